package ring_test

import (
	"fmt"

	"kumofs/ring"
)

func ExampleHashSpace_Owners() {
	var nodes []ring.Node
	for _, s := range []string{"127.0.0.1:19803", "127.0.0.1:19802", "127.0.0.1:19801"} {
		a, err := ring.ParseAddr(s, 19800)
		if err != nil {
			panic(err)
		}
		nodes = append(nodes, ring.Node{Addr: a, Active: true})
	}
	hs := ring.New(nodes, 0)
	hs, _ = hs.WithFault(nodes[0].Addr, 1) // 19803 fails

	o := hs.Owners(ring.Hash([]byte("a")))
	for i := 0; i < o.Len(); i++ {
		fmt.Println(i, o.At(i).Addr, o.At(i).Active)
	}
	c, _ := o.Coordinator()
	fmt.Println("coordinator", c.Addr)
	// Output:
	// 0 127.0.0.1:19803 false
	// 1 127.0.0.1:19801 true
	// 2 127.0.0.1:19802 true
	// coordinator 127.0.0.1:19801
}

// The balance of 24 servers with kumofs's placement and with a finer one.
func ExampleSpreadOf() {
	var nodes []ring.Node
	for i := 1; i <= 24; i++ {
		nodes = append(nodes, ring.Node{Addr: ring.AddrFrom4([4]byte{10, 0, 0, byte(i)}, 19800), Active: true})
	}
	for _, vnodes := range []int{ring.DefaultVirtualNodes, 1024} {
		hs := ring.NewWithVirtualNodes(nodes, 0, vnodes)
		sp := ring.SpreadOf(hs.Shares())
		fmt.Printf("%d virtual nodes: busiest/mean %.3f as coordinator, %.3f as owner\n",
			hs.VirtualNodesPerServer(), sp.CoordinatorMax, sp.OwnerMax)
	}
	// Output:
	// 128 virtual nodes: busiest/mean 1.190 as coordinator, 1.079 as owner
	// 1024 virtual nodes: busiest/mean 1.060 as coordinator, 1.029 as owner
}
