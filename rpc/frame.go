package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/durachord/durachord/crypto"
)

const (
	headerSize = 4
	// minFrame is the smallest length a frame may announce: MAC and one byte.
	minFrame = crypto.MACSize + 1
	// readChunk bounds the first allocation for a frame body; the buffer grows
	// as bytes arrive.
	readChunk = 64 << 10
)

// appendFrame appends the frame of body (length, HMAC under kr, body) to dst.
func appendFrame(dst []byte, kr *crypto.Keyring, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(crypto.MACSize+len(body)))
	dst = kr.AppendSign(dst, body)
	return append(dst, body...)
}

// readFrameHeader reads the length prefix and checks it against the bounds.
func readFrameHeader(r io.Reader, maxFrame int) (int, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(maxFrame) {
		return 0, fmt.Errorf("%w: length %d, maximum %d", ErrFrameTooLarge, n, maxFrame)
	}
	if n < minFrame {
		return 0, fmt.Errorf("%w: length %d, minimum %d", ErrBadFrame, n, minFrame)
	}
	return int(n), nil
}

// readFrameRest reads the n bytes announced by a header and returns the body
// if its MAC verifies under kr. The buffer grows with the bytes received.
func readFrameRest(r io.Reader, n int, kr *crypto.Keyring) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(min(n, readChunk))
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b := buf.Bytes()
	mac, body := b[:crypto.MACSize], b[crypto.MACSize:]
	if !kr.Verify(body, mac) {
		return nil, ErrBadMAC
	}
	return body, nil
}

// readFrame reads one frame of at most maxFrame bytes after the prefix and
// returns its body if the MAC verifies under kr.
func readFrame(r io.Reader, maxFrame int, kr *crypto.Keyring) ([]byte, error) {
	n, err := readFrameHeader(r, maxFrame)
	if err != nil {
		return nil, err
	}
	return readFrameRest(r, n, kr)
}

// stream is the jsonrpc2.ObjectStream of one connection: JSON values in
// frames. jsonrpc2 calls ReadObject from one goroutine and WriteObject under
// its own send lock, so neither needs a lock here.
type stream struct {
	conn     net.Conn
	br       *bufio.Reader
	keys     *crypto.Keyring
	maxFrame int
	// idleTimeout bounds the wait for the next frame (0: none); frameTimeout
	// bounds reading the rest of a started frame and writing a frame.
	idleTimeout, frameTimeout time.Duration
	// reject is called once with the reason when a frame is refused.
	reject func(reason string, err error)
	wbuf   []byte
}

func newStream(conn net.Conn, keys *crypto.Keyring, maxFrame int, frameTimeout time.Duration, reject func(string, error)) *stream {
	return &stream{
		conn:         conn,
		br:           bufio.NewReader(conn),
		keys:         keys,
		maxFrame:     maxFrame,
		frameTimeout: frameTimeout,
		reject:       reject,
	}
}

// readBody reads the next frame and returns its verified body.
func (s *stream) readBody() ([]byte, error) {
	var deadline time.Time
	if s.idleTimeout > 0 {
		deadline = time.Now().Add(s.idleTimeout)
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	n, err := readFrameHeader(s.br, s.maxFrame)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrBadFrame) {
			s.reject("frame", err)
		}
		return nil, err
	}
	if s.frameTimeout > 0 {
		if err := s.conn.SetReadDeadline(time.Now().Add(s.frameTimeout)); err != nil {
			return nil, err
		}
	}
	body, err := readFrameRest(s.br, n, s.keys)
	if errors.Is(err, ErrBadMAC) {
		s.reject("hmac", err)
	}
	return body, err
}

// ReadObject reads the next frame and decodes its body into v.
func (s *stream) ReadObject(v any) error {
	body, err := s.readBody()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		err = fmt.Errorf("%w: %v", ErrBadFrame, err)
		s.reject("frame", err)
		return err
	}
	return nil
}

// WriteObject encodes v as JSON and writes it as one frame. A failed write
// closes the connection: a partly written frame cannot be followed by another.
func (s *stream) WriteObject(v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if crypto.MACSize+len(body) > s.maxFrame {
		return fmt.Errorf("%w: outgoing body of %d bytes, maximum %d", ErrFrameTooLarge, len(body), s.maxFrame-crypto.MACSize)
	}
	s.wbuf = appendFrame(s.wbuf[:0], s.keys, body)
	var deadline time.Time
	if s.frameTimeout > 0 {
		deadline = time.Now().Add(s.frameTimeout)
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		_ = s.conn.Close()
		return err
	}
	if _, err := s.conn.Write(s.wbuf); err != nil {
		_ = s.conn.Close()
		return err
	}
	if cap(s.wbuf) > readChunk {
		s.wbuf = nil // do not pin a large buffer on an idle connection
	}
	return nil
}

// Close closes the connection.
func (s *stream) Close() error { return s.conn.Close() }
