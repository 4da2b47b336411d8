package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

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
	return checkFrameLength(binary.BigEndian.Uint32(hdr[:]), maxFrame)
}

// readBufferedHeader is readFrameHeader on a buffered reader.
func readBufferedHeader(br *bufio.Reader, maxFrame int) (int, error) {
	hdr, err := br.Peek(headerSize)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n := binary.BigEndian.Uint32(hdr)
	_, _ = br.Discard(headerSize)
	return checkFrameLength(n, maxFrame)
}

// checkFrameLength checks a length prefix against the bounds.
func checkFrameLength(n uint32, maxFrame int) (int, error) {
	if uint64(n) > uint64(maxFrame) {
		return 0, fmt.Errorf("%w: length %d, maximum %d", ErrFrameTooLarge, n, maxFrame)
	}
	if n < minFrame {
		return 0, fmt.Errorf("%w: length %d, minimum %d", ErrBadFrame, n, minFrame)
	}
	return int(n), nil
}

// verifier checks a frame's MAC: a *crypto.Keyring, or a connection's
// reusable *crypto.MAC.
type verifier interface {
	Verify(msg, mac []byte) bool
}

// readFrameInto reads the n bytes announced by a header into dst (reused if
// it has room) and returns them (MAC, then body) if the MAC verifies. A
// buffer of more than readChunk grows with the bytes received.
func readFrameInto(r io.Reader, n int, dst []byte, v verifier) ([]byte, error) {
	var b []byte
	if n <= max(cap(dst), readChunk) {
		b = slices.Grow(dst[:0], n)[:n]
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return dst[:0], err
		}
	} else {
		buf := bytes.NewBuffer(dst[:0])
		buf.Grow(readChunk)
		if _, err := io.CopyN(buf, r, int64(n)); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return dst[:0], err
		}
		b = buf.Bytes()
	}
	if !v.Verify(b[crypto.MACSize:], b[:crypto.MACSize]) {
		return b, ErrBadMAC
	}
	return b, nil
}

// readFrame reads one frame of at most maxFrame bytes after the prefix and
// returns its body if the MAC verifies under kr.
func readFrame(r io.Reader, maxFrame int, kr *crypto.Keyring) ([]byte, error) {
	n, err := readFrameHeader(r, maxFrame)
	if err != nil {
		return nil, err
	}
	b, err := readFrameInto(r, n, nil, kr)
	if err != nil {
		return nil, err
	}
	return b[crypto.MACSize:], nil
}
