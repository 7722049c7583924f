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
