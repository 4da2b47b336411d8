package netutil

import (
	"net"
	"time"
)

// FirstByte waits up to timeout for nc's first byte and returns a
// connection that reads it again, then the rest of nc. It clears the read
// deadline it set. On a timeout or any read error it returns the error;
// the caller closes nc.
func FirstByte(nc net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var b [1]byte
	for {
		n, err := nc.Read(b[:])
		if n == 1 {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &prefixConn{Conn: nc, first: b[0], pending: true}, nil
}

// prefixConn reads one byte read ahead, then its Conn.
type prefixConn struct {
	net.Conn
	first   byte
	pending bool // first not read yet; used by the one reader only
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		p[0] = c.first
		c.pending = false
		return 1, nil
	}
	return c.Conn.Read(p)
}
