package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"kumofs/store"
)

// runBench mirrors tchtest write/read: key = value = the record number
// as 8 decimal digits; with -rnd the number is random in [1, RNUM].
func runBench(args []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: %w", errUsage)
	}
	switch args[0] {
	case "write":
		return benchWrite(args[1:], w)
	case "read":
		return benchRead(args[1:], w)
	}
	return fmt.Errorf("bench: unknown mode %q (want write or read): %w", args[0], errUsage)
}

func fill8(b []byte, n uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

func benchWrite(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("bench write", flag.ContinueOnError)
	rnd := fs.Bool("rnd", false, "random record numbers")
	syncName := fs.String("sync", "none", "sync policy: none, interval or always")
	rest, err := parse(fs, args, 2, 3)
	if err != nil {
		return err
	}
	pol, err := store.ParseSyncPolicy(*syncName)
	if err != nil {
		return err
	}
	rnum, err := parseNum(rest[1], "record number")
	if err != nil {
		return err
	}
	bnum := uint64(0)
	if len(rest) == 3 {
		if bnum, err = parseNum(rest[2], "bucket number"); err != nil {
			return err
		}
	}
	if bnum == 0 {
		bnum = 2 * rnum
	}
	path := rest[0]
	os.Remove(path)
	start := time.Now()
	if err := store.Create(path, bnum); err != nil {
		return err
	}
	db, err := store.Open(path, &store.Options{Sync: pol})
	if err != nil {
		return err
	}
	kb := make([]byte, 8)
	rec := store.Record{Key: kb, Value: kb}
	for i := uint64(1); i <= rnum; i++ {
		n := i
		if *rnd {
			n = rand.Uint64N(rnum) + 1
		}
		fill8(kb, n)
		if err := db.Put(&rec); err != nil {
			db.Close()
			return err
		}
	}
	records := db.Len()
	if err := db.Close(); err != nil {
		return err
	}
	el := time.Since(start)
	fi, _ := os.Stat(path)
	fmt.Fprintf(w, "record number: %d\nfile size: %d\ntime: %.3f\nok\n", records, fi.Size(), el.Seconds())
	return nil
}

func benchRead(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("bench read", flag.ContinueOnError)
	rnd := fs.Bool("rnd", false, "random record numbers")
	rest, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	start := time.Now()
	db, err := openExisting(rest[0])
	if err != nil {
		return err
	}
	rnum := uint64(db.Len())
	kb := make([]byte, 8)
	buf := make([]byte, 0, 256)
	var miss uint64
	for i := uint64(1); i <= rnum; i++ {
		n := i
		if *rnd {
			n = rand.Uint64N(rnum) + 1
		}
		fill8(kb, n)
		_, b, err := db.Get(kb, buf)
		buf = b
		if err == store.ErrNotFound && *rnd {
			miss++
			continue
		}
		if err != nil {
			db.Close()
			return fmt.Errorf("get %s: %w", kb, err)
		}
	}
	if err := db.Close(); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(w, "record number: %d\nmisses: %d\ntime: %.3f\nok\n", rnum, miss, el.Seconds())
	return nil
}
