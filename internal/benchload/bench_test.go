package benchload

import "testing"

// BenchmarkBatch is the generator's own cost per request (no network): a
// batch of 16 requests, 90% gets, 1 KiB values, against canned replies.
func BenchmarkBatch(b *testing.B) {
	for _, verify := range []bool{false, true} {
		name := "plain"
		if verify {
			name = "verify"
		}
		b.Run(name, func(b *testing.B) {
			v := make([]byte, 1024)
			reply := cat([]byte("VALUE "+key0+" 0 1024\r\n"), v, []byte("\r\nEND\r\n"))
			w := testWorker(b, Config{Keys: 1, ValueSize: 1024, Pipeline: 16, GetRatio: 1, Verify: verify},
				&fakeConn{r: &repeater{pattern: reply}})
			b.ReportAllocs()
			b.SetBytes(1024)
			for i := 0; b.Loop(); i++ {
				if i%16 == 0 {
					w.batch(16)
				}
			}
		})
	}
}
