package rpc

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Frame size bounds accepted by Validate.
const (
	DefaultMaxFrameSize = 4 << 20
	minMaxFrameSize     = 4 << 10
	maxMaxFrameSize     = 1 << 30
)

// ClientConfig configures a Client. The zero value is not valid; start from
// DefaultClientConfig.
type ClientConfig struct {
	// CallTimeout bounds a call whose ctx has no deadline. Default 5 s.
	CallTimeout time.Duration
	// DialTimeout bounds TCP connect, TLS handshake and hello exchange of a
	// new connection. Default 5 s.
	DialTimeout time.Duration
	// IdleTimeout closes a pooled connection that carried no call for this
	// long. Default 90 s (below the server's default IdleTimeout).
	IdleTimeout time.Duration
	// FrameTimeout bounds reading the rest of a started frame and writing a
	// frame. Default 10 s.
	FrameTimeout time.Duration
	// MaxFrameSize is the largest frame (bytes after the length prefix)
	// accepted or sent. It must hold the largest reply, e.g. a page of
	// records. Default 4 MiB.
	MaxFrameSize int
	// Logger receives Warn for refused peers and Debug for broken
	// connections. Default (nil): no logging.
	Logger hclog.Logger
	// Metrics registers the client's collectors. Default (nil): metrics are
	// kept but not registered.
	Metrics prometheus.Registerer
}

// DefaultClientConfig returns the defaults documented on ClientConfig.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		CallTimeout:  5 * time.Second,
		DialTimeout:  5 * time.Second,
		IdleTimeout:  90 * time.Second,
		FrameTimeout: 10 * time.Second,
		MaxFrameSize: DefaultMaxFrameSize,
	}
}

// Validate reports the first invalid field.
func (c ClientConfig) Validate() error {
	return errors.Join(
		positive("CallTimeout", c.CallTimeout),
		positive("DialTimeout", c.DialTimeout),
		positive("IdleTimeout", c.IdleTimeout),
		positive("FrameTimeout", c.FrameTimeout),
		frameSize(c.MaxFrameSize),
	)
}

// ServerConfig configures a Server. The zero value is not valid; start from
// DefaultServerConfig.
type ServerConfig struct {
	// FirstByteTimeout is the time an accepted connection has to send its
	// first byte; one that sends nothing is closed. Default 2 s.
	FirstByteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake and hello exchange of an
	// accepted connection, from its first byte. Default 5 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection on which no frame arrived for this long.
	// Default 5 min.
	IdleTimeout time.Duration
	// FrameTimeout bounds reading the rest of a started frame and writing a
	// frame. Default 10 s.
	FrameTimeout time.Duration
	// HandlerTimeout bounds every handler call (the caller's remaining time,
	// sent with the request, bounds it further). Default 30 s.
	HandlerTimeout time.Duration
	// MaxHandlers is the number of records handlers running at once, over
	// all connections; a request beyond it waits for a slot within its
	// deadline, behind at most 4*MaxHandlers others, and is answered with
	// chord.ErrOverloaded when it cannot get one. Ring calls (chord.*) have
	// 64 slots of their own, and the CallingMethods MaxHandlers more.
	// Default 256.
	MaxHandlers int
	// CallingMethods are the records calls whose handlers call other nodes
	// before they answer (an owner's dht.put waits for its replica pushes).
	// They get MaxHandlers slots of their own: if they
	// shared the slots of the calls they wait for, a burst of them on every
	// node would hold all the slots while each waits for a slot on a peer.
	// Default none.
	CallingMethods []string
	// MaxConns is the number of connections open at once (including those in
	// their handshake). A new connection beyond it takes the place of the
	// connection idle longest (no call being handled, not in its
	// handshake); when none is idle it is closed at once. Default 1024.
	MaxConns int
	// MaxConnsPerAddress is the number of connections open at once from one
	// source address (an IPv4 address, an IPv6 /64), with the same rule
	// among that address's connections. Above MaxConns it is MaxConns.
	// Default 128.
	MaxConnsPerAddress int
	// MaxRequestBytes bounds the bytes of request frames read and not yet
	// answered: a connection whose next frame does not fit stops being read
	// until enough is released. The CallingMethods have a budget of this
	// size of their own (their handlers wait for calls that take from the
	// other), and frames of at most 4 KiB (ring calls) take from neither:
	// they are bounded by the handler and queue counts. At least
	// MaxFrameSize, so that any one frame fits. Default 64 MiB.
	MaxRequestBytes int64
	// MaxFrameSize is the largest frame (bytes after the length prefix)
	// accepted or sent. Default 4 MiB.
	MaxFrameSize int
	// Logger receives Info for lifecycle, Warn for refused peers. Default
	// (nil): no logging.
	Logger hclog.Logger
	// Metrics registers the server's collectors. Default (nil): metrics are
	// kept but not registered.
	Metrics prometheus.Registerer
}

// DefaultServerConfig returns the defaults documented on ServerConfig.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		FirstByteTimeout:   2 * time.Second,
		HandshakeTimeout:   5 * time.Second,
		IdleTimeout:        5 * time.Minute,
		FrameTimeout:       10 * time.Second,
		HandlerTimeout:     30 * time.Second,
		MaxHandlers:        256,
		MaxConns:           1024,
		MaxConnsPerAddress: 128,
		MaxRequestBytes:    64 << 20,
		MaxFrameSize:       DefaultMaxFrameSize,
	}
}

// Validate reports the invalid fields.
func (c ServerConfig) Validate() error {
	var errs []error
	errs = append(errs,
		positive("FirstByteTimeout", c.FirstByteTimeout),
		positive("HandshakeTimeout", c.HandshakeTimeout),
		positive("IdleTimeout", c.IdleTimeout),
		positive("FrameTimeout", c.FrameTimeout),
		positive("HandlerTimeout", c.HandlerTimeout),
		frameSize(c.MaxFrameSize),
	)
	if c.MaxHandlers < 1 {
		errs = append(errs, fmt.Errorf("rpc: MaxHandlers %d: must be at least 1", c.MaxHandlers))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("rpc: MaxConns %d: must be at least 1", c.MaxConns))
	}
	if c.MaxConnsPerAddress < 1 {
		errs = append(errs, fmt.Errorf("rpc: MaxConnsPerAddress %d: must be at least 1", c.MaxConnsPerAddress))
	}
	if c.MaxRequestBytes < int64(c.MaxFrameSize) {
		errs = append(errs, fmt.Errorf("rpc: MaxRequestBytes %d: must be at least MaxFrameSize (%d)", c.MaxRequestBytes, c.MaxFrameSize))
	}
	return errors.Join(errs...)
}

func positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("rpc: %s %v: must be positive", name, d)
	}
	return nil
}

func frameSize(n int) error {
	if n < minMaxFrameSize || n > maxMaxFrameSize {
		return fmt.Errorf("rpc: MaxFrameSize %d: must be in [%d, %d]", n, minMaxFrameSize, maxMaxFrameSize)
	}
	return nil
}
