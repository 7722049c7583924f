//go:build linux

package memcache

import (
	"os"
	"syscall"
	"unsafe"
)

// epoller is the event loop's readiness source: an epoll instance whose
// own descriptor is registered with the Go runtime's poller, so that the
// loop goroutine waits in the scheduler, not in a blocked thread.
type epoller struct {
	f  *os.File
	rc syscall.RawConn
	ev [128]syscall.EpollEvent

	fds []int32               // wait's result, valid until the next wait
	fn  func(fd uintptr) bool // poll, bound once
	err error
}

func newPoller() (poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	e := &epoller{f: os.NewFile(uintptr(fd), "epoll")}
	if e.rc, err = e.f.SyscallConn(); err != nil {
		e.f.Close()
		return nil, err
	}
	e.fn = e.poll
	return e, nil
}

func (e *epoller) add(fd int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	return e.ctl(syscall.EPOLL_CTL_ADD, fd, &ev)
}

// ctl is epoll_ctl on the epoll descriptor while it is open (never on a
// number a closed one left for another file to take).
func (e *epoller) ctl(op, fd int, ev *syscall.EpollEvent) error {
	var err error
	if cerr := e.rc.Control(func(efd uintptr) { err = epollCtl(int(efd), op, fd, ev) }); cerr != nil {
		return cerr
	}
	return err
}

// arm turns fd's readiness reports on or off. Off takes fd out of the
// epoll set altogether: with an empty event mask epoll would still report
// a hang-up, over and over.
func (e *epoller) arm(fd int, on bool) error {
	if !on {
		e.del(fd)
		return nil
	}
	return e.add(fd)
}

func (e *epoller) del(fd int) {
	var ev syscall.EpollEvent // non-nil for kernels before 2.6.9
	e.ctl(syscall.EPOLL_CTL_DEL, fd, &ev)
}

// poll collects the ready descriptors without waiting; it reports false
// (wait for the epoll descriptor to become readable) if there are none.
func (e *epoller) poll(fd uintptr) bool {
	n, err := epollPoll(int(fd), e.ev[:])
	for err == syscall.EINTR {
		n, err = epollPoll(int(fd), e.ev[:])
	}
	if err != nil {
		e.err = err
		return true
	}
	for i := 0; i < n; i++ {
		e.fds = append(e.fds, e.ev[i].Fd)
	}
	return n > 0
}

func (e *epoller) wait() ([]int32, error) {
	e.fds, e.err = e.fds[:0], nil
	if err := e.rc.Read(e.fn); err != nil {
		return nil, err
	}
	return e.fds, e.err
}

func (e *epoller) close() error { return e.f.Close() }

// epollPoll is epoll_wait with a zero timeout, and epollCtl epoll_ctl,
// as raw system calls: they never block, so they need not tell the Go
// scheduler they are in a system call, and not telling it keeps a fully
// idle process's sysmon thread asleep (see internal/rawio).
func epollPoll(epfd int, ev []syscall.EpollEvent) (int, error) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd),
		uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
