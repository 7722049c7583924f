//go:build !unix

package rawio

import (
	"errors"
	"net"
)

type writer struct{}

// Init reports false: raw writes are not implemented on this platform.
func (w *Writer) Init(c net.Conn) bool { return false }

// TryWrite writes nothing and reports false.
func (w *Writer) TryWrite(b []byte) (n int, ok bool) { return 0, false }

type reader struct{}

// Init reports false: raw reads are not implemented on this platform.
func (r *Reader) Init(c net.Conn) bool { return false }

// TryRead reads nothing and reports ErrWouldBlock's absence: an error.
func (r *Reader) TryRead(b []byte) (n int, err error) { return 0, errors.New("rawio: not supported") }

// PeerState reports nothing: Init reported false.
func (r *Reader) PeerState() (reset, eof bool) { return false, false }

// Read reads nothing and fails: Init reported false.
func (r *Reader) Read(b []byte) (n int, err error) { return 0, errors.New("rawio: not supported") }

// Write writes nothing and fails: Init reported false.
func (w *Writer) Write(b []byte) (n int, err error) { return 0, errors.New("rawio: not supported") }
