package netutil

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Accept backoff bounds: the first retry waits minBackoff, each further one
// twice the last, up to maxBackoff (net/http's Server.Serve uses the same).
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Serve accepts connections on l and hands each to handle, which runs in
// Serve's goroutine and must not block. It returns nil once done is closed
// (the caller closes l to end a blocked Accept), or the first accept error
// that is not temporary. A temporary error (Temporary) is logged and retried
// after a delay of 5 ms, doubled at each further failure up to 1 s, reset by
// a successful accept.
func Serve(l net.Listener, done <-chan struct{}, log hclog.Logger, handle func(net.Conn)) error {
	return serve(l, done, log, handle, sleep)
}

// sleep waits d or until done is closed; it reports whether d passed.
func sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

func serve(l net.Listener, done <-chan struct{}, log hclog.Logger, handle func(net.Conn), wait func(time.Duration, <-chan struct{}) bool) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-done:
				return nil
			default:
			}
			if !Temporary(err) {
				return err
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			log.Warn("accept failed; retrying", "address", l.Addr().String(), "error", err, "delay", backoff)
			if !wait(backoff, done) {
				return nil
			}
			continue
		}
		backoff = 0
		handle(nc)
	}
}

// Temporary reports whether an accept error is one that passes: a timeout,
// or a shortage of file descriptors or buffers, or a connection that was
// reset or aborted before it was accepted.
func Temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
