// Command kumohash shows where kumo places keys, with the output of
// kumofs's kumohash:
//
//	kumohash SERVER[:port] ... -- hash|assign|dump [KEY...]
//	kumohash -m MGR[:port] hash|assign|dump [KEY...]
//
// The first form builds the ring offline from the listed servers, in that
// order, all active (the default port is 19800; kumofs's 19700 was a bug).
// The second asks the manager for its write hash space, keeping each
// server's active flag. hash prints "<hash16hex>  <key>"; assign prints that
// line and up to 3 owners "  <i>: ip:port", fault servers included; dump
// prints "<hash16hex>  ip:port" for every virtual node in ring order.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, fetchFromManager))
}
