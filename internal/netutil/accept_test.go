package netutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails Accept with its errors in turn, then hands out conns,
// then fails with net.ErrClosed.
type flakyListener struct {
	errs  []error
	conns []net.Conn
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	if len(l.conns) > 0 {
		c := l.conns[0]
		l.conns = l.conns[1:]
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *flakyListener) Close() error   { return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestServeRetriesTemporaryErrorsWithBackoff(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	var errs []error
	for range 9 {
		errs = append(errs, acceptErr(syscall.EMFILE))
	}
	errs = append(errs, acceptErr(syscall.ENFILE), acceptErr(syscall.ECONNABORTED))
	l := &flakyListener{errs: errs, conns: []net.Conn{c1}}
	var delays []time.Duration
	var handled []net.Conn
	wait := func(d time.Duration, _ <-chan struct{}) bool {
		delays = append(delays, d)
		return true
	}
	// After the conn, one more EMFILE: the delay starts again from 5 ms.
	handle := func(nc net.Conn) {
		handled = append(handled, nc)
		l.errs = append(l.errs, acceptErr(syscall.EMFILE))
	}
	err := serve(l, make(chan struct{}), nil, handle, wait)
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("serve() = %v; want the listener's final error %v", err, net.ErrClosed)
	}
	if len(handled) != 1 || handled[0] != c1 {
		t.Fatalf("handled %d conns; want the one after the errors", len(handled))
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second, time.Second, 5 * ms}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Errorf("delays %v; want %v", delays, want)
	}
}

func TestServeReturnsOtherErrorsAndStopsWhenDone(t *testing.T) {
	boom := errors.New("boom")
	err := Serve(&flakyListener{errs: []error{boom}}, make(chan struct{}), nil, func(net.Conn) {})
	if !errors.Is(err, boom) {
		t.Errorf("Serve() = %v; want %v", err, boom)
	}
	done := make(chan struct{})
	close(done)
	if err := Serve(&flakyListener{errs: []error{acceptErr(syscall.EMFILE)}}, done, nil, func(net.Conn) {}); err != nil {
		t.Errorf("Serve() after done = %v; want nil", err)
	}
}

func TestServeRealSleepsThenAccepts(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	l := &flakyListener{errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE)}, conns: []net.Conn{c1}}
	got := 0
	err := Serve(l, make(chan struct{}), nil, func(net.Conn) { got++ })
	if !errors.Is(err, net.ErrClosed) || got != 1 {
		t.Errorf("Serve() = %v with %d conns handled; want net.ErrClosed after 1", err, got)
	}
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{acceptErr(syscall.EMFILE), true},
		{acceptErr(syscall.ENFILE), true},
		{acceptErr(syscall.ECONNABORTED), true},
		{acceptErr(syscall.ENOBUFS), true},
		{os.ErrDeadlineExceeded, true},
		{net.ErrClosed, false},
		{acceptErr(syscall.EINVAL), false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
