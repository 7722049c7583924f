// Command kumohash shows where kumo places keys, with the output of
// kumofs's kumohash:
//
//	kumohash SERVER[:port] ... -- hash|assign|dump|balance [KEY...]
//	kumohash -m MGR[:port] hash|assign|dump|balance [KEY...]
//	kumohash -servers N hash|assign|dump|balance [KEY...]
//
// The first form builds the ring offline from the listed servers, in that
// order, all active (the default port is 19800; kumofs's 19700 was a bug).
// The second asks the manager for its write hash space, keeping each
// server's active flag and its virtual-node count. The third generates N
// servers as a deployment has them: 10.0.0.1:19800, 10.0.0.2:19800, ...
// -vnodes N builds the ring with N virtual nodes per server instead of
// kumofs's 128 (with -m: instead of the manager's count).
//
// hash prints "<hash16hex>  <key>"; assign prints that line and up to 3
// owners "  <i>: ip:port", fault servers included; dump prints
// "<hash16hex>  ip:port" for every virtual node in ring order; balance
// prints each server's share of the key space as coordinator (first owner)
// and as any owner, computed exactly from the ring's arcs, and the
// busiest/mean and least/mean ratios. balance also takes its options after
// the command, and with lists (-servers 3,6,12 -vnodes 128,1024) or
// -sets K (K address sets 10.k.0.1..) it prints a Markdown table of the
// ratios instead, as in docs/capacity.md.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, fetchFromManager))
}
