package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client is a connection to a node's client API. It is safe for concurrent
// use: requests from several goroutines are pipelined on the one connection
// and replies are matched to GETs by key; several outstanding GETs of one key
// are answered in the order they were sent.
type Client struct {
	nc         net.Conn
	readerDone chan struct{}
	closeOnce  sync.Once

	wmu sync.Mutex // serialises writes and the queueing of GET waiters, so waiters of a key queue in the order their GETs were written
	buf []byte     // guarded by wmu

	mu      sync.Mutex // guards waiting, err
	waiting map[[KeySize]byte][]chan result
	err     error // why the client stopped; nil while usable
}

type result struct {
	value []byte
	err   error
}

// Dial connects to the client API at addr (host:port). ctx bounds the dial
// only.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: dial %s: %w", addr, err)
	}
	return NewClient(nc), nil
}

// NewClient returns a client speaking on nc, which it owns from now on.
func NewClient(nc net.Conn) *Client {
	c := &Client{
		nc:         nc,
		readerDone: make(chan struct{}),
		waiting:    make(map[[KeySize]byte][]chan result),
	}
	go func() {
		defer close(c.readerDone)
		c.readLoop()
	}()
	return c
}

// Put sends p. The protocol has no reply to a PUT: a nil error means that
// the whole message was written, not that it was stored. A later Get of the
// same key on this client sees it (read-your-writes). ctx bounds the write.
func (c *Client) Put(ctx context.Context, p Put) error {
	if err := p.Validate(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.stopped(); err != nil {
		return err
	}
	return c.write(ctx, p)
}

// Get returns the value stored under key, ErrNotFound when the node answers
// FAILURE, or an error (wrapping ctx's error if ctx ended first).
func (c *Client) Get(ctx context.Context, key [KeySize]byte) ([]byte, error) {
	ch := make(chan result, 1) // the reader never blocks on it
	c.wmu.Lock()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, err
	}
	c.waiting[key] = append(c.waiting[key], ch)
	c.mu.Unlock()
	err := c.write(ctx, Get{Key: key})
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.value, r.err
	case <-ctx.Done():
		// The waiter stays queued so that the late reply is matched to it
		// and not to a later GET of the same key.
		return nil, fmt.Errorf("api: get %x: %w", key, ctx.Err())
	}
}

// Close closes the connection; GETs waiting for replies fail with
// ErrClientClosed. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.fail(ErrClientClosed)
		<-c.readerDone
	})
	return nil
}

// Err returns nil while the client is usable, and afterwards why it stopped
// (an error wrapping ErrClientClosed): after Close, or after its connection
// failed. A stopped client stays stopped; dial a new one.
func (c *Client) Err() error { return c.stopped() }

func (c *Client) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// write writes m in one Write call; wmu is held. A failed write may have
// sent part of the message, so it ends the client.
func (c *Client) write(ctx context.Context, m Message) error {
	c.buf = m.AppendTo(c.buf[:0])
	deadline, _ := ctx.Deadline()
	if err := c.nc.SetWriteDeadline(deadline); err != nil {
		c.fail(err)
		return c.stopped()
	}
	stop := func() bool { return true }
	fired := make(chan struct{})
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			defer close(fired)
			_ = c.nc.SetWriteDeadline(time.Unix(1, 0)) // fails only if closed
		})
	}
	_, err := c.nc.Write(c.buf)
	if !stop() {
		<-fired // the next write sets its own deadline after this one
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		c.fail(fmt.Errorf("write %v: %w", m.Type(), err))
		return c.stopped()
	}
	return nil
}

// fail stops the client for reason err: it closes the connection and fails
// every waiting GET.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		if err == ErrClientClosed {
			c.err = err
		} else {
			c.err = fmt.Errorf("%w: %w", ErrClientClosed, err)
		}
	}
	waiting := c.waiting
	c.waiting = make(map[[KeySize]byte][]chan result)
	err = c.err
	c.mu.Unlock()
	_ = c.nc.Close() // the client is done with it either way
	for _, q := range waiting {
		for _, ch := range q {
			ch <- result{err: err}
		}
	}
}

func (c *Client) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		m, err := ReadMessage(br)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		var r result
		switch m := m.(type) {
		case Success:
			r.value = m.Value
		case Failure:
			r.err = ErrNotFound
		default:
			c.fail(fmt.Errorf("%w: %v from a node", ErrUnexpectedType, m.Type()))
			return
		}
		key := m.MessageKey()
		c.mu.Lock()
		q := c.waiting[key]
		if len(q) == 0 {
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: %v for key %x that was not asked for", ErrUnexpectedType, m.Type(), key))
			return
		}
		if len(q) == 1 {
			delete(c.waiting, key)
		} else {
			c.waiting[key] = q[1:]
		}
		c.mu.Unlock()
		q[0] <- r
	}
}
