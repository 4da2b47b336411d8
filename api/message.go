package api

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Type is a message type, the second field of the header.
type Type uint16

// Message types.
const (
	TypePut     Type = 650
	TypeGet     Type = 651
	TypeSuccess Type = 652
	TypeFailure Type = 653
)

// String returns the protocol name of t ("PUT", "GET", ...).
func (t Type) String() string {
	switch t {
	case TypePut:
		return "PUT"
	case TypeGet:
		return "GET"
	case TypeSuccess:
		return "SUCCESS"
	case TypeFailure:
		return "FAILURE"
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Sizes of the wire format.
const (
	// HeaderSize is the size of the header: size u16, type u16.
	HeaderSize = 4
	// KeySize is the size of a key.
	KeySize = 32
	// MaxMessageSize is the largest size a u16 size field can carry.
	MaxMessageSize = 65535

	putHeadSize     = HeaderSize + 4 + KeySize // 40
	successHeadSize = HeaderSize + KeySize     // 36

	// MaxValueSize is the largest value a PUT can carry: 65535-40.
	MaxValueSize = MaxMessageSize - putHeadSize
	// MaxSuccessValueSize is the largest value a SUCCESS can carry.
	MaxSuccessValueSize = MaxMessageSize - successHeadSize

	// GetSize and FailureSize are the exact sizes of GET and FAILURE.
	GetSize     = HeaderSize + KeySize
	FailureSize = HeaderSize + KeySize
)

// Message is one of Put, Get, Success, Failure.
type Message interface {
	// Type returns the message type.
	Type() Type
	// MessageKey returns the key the message is about.
	MessageKey() [KeySize]byte
	// AppendTo appends the wire form of the message to b. The message
	// must be valid (see Validate); an invalid one is appended with a wrong
	// size field.
	AppendTo(b []byte) []byte
	// Validate reports whether the message can be sent: ErrValueSize if
	// its value is empty or too long.
	Validate() error
}

// Put asks the node to store Value under Key. It gets no reply.
type Put struct {
	// TTL is the requested lifetime in seconds; 0 means the node's default.
	TTL uint16
	// Replication is the requested number of copies; 0 means the node's
	// default.
	Replication uint8
	Key         [KeySize]byte
	// Value holds 1..MaxValueSize bytes.
	Value []byte
}

// Get asks for the value stored under Key.
type Get struct {
	Key [KeySize]byte
}

// Success answers a Get with the value.
type Success struct {
	Key [KeySize]byte
	// Value holds 1..MaxSuccessValueSize bytes.
	Value []byte
}

// Failure answers a Get for which no live value exists.
type Failure struct {
	Key [KeySize]byte
}

// Type implements Message.
func (Put) Type() Type { return TypePut }

// Type implements Message.
func (Get) Type() Type { return TypeGet }

// Type implements Message.
func (Success) Type() Type { return TypeSuccess }

// Type implements Message.
func (Failure) Type() Type { return TypeFailure }

// MessageKey implements Message.
func (m Put) MessageKey() [KeySize]byte { return m.Key }

// MessageKey implements Message.
func (m Get) MessageKey() [KeySize]byte { return m.Key }

// MessageKey implements Message.
func (m Success) MessageKey() [KeySize]byte { return m.Key }

// MessageKey implements Message.
func (m Failure) MessageKey() [KeySize]byte { return m.Key }

// Validate implements Message.
func (m Put) Validate() error { return checkValue(len(m.Value), MaxValueSize) }

// Validate implements Message.
func (Get) Validate() error { return nil }

// Validate implements Message.
func (m Success) Validate() error { return checkValue(len(m.Value), MaxSuccessValueSize) }

// Validate implements Message.
func (Failure) Validate() error { return nil }

func checkValue(n, limit int) error {
	if n < 1 || n > limit {
		return fmt.Errorf("%w: %d bytes, want 1..%d", ErrValueSize, n, limit)
	}
	return nil
}

func appendHeader(b []byte, size int, t Type) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, uint16(size)), uint16(t))
}

// AppendTo implements Message.
func (m Put) AppendTo(b []byte) []byte {
	b = appendHeader(b, putHeadSize+len(m.Value), TypePut)
	b = binary.BigEndian.AppendUint16(b, m.TTL)
	b = append(b, m.Replication, 0)
	b = append(b, m.Key[:]...)
	return append(b, m.Value...)
}

// AppendTo implements Message.
func (m Get) AppendTo(b []byte) []byte {
	return append(appendHeader(b, GetSize, TypeGet), m.Key[:]...)
}

// AppendTo implements Message.
func (m Success) AppendTo(b []byte) []byte {
	b = appendHeader(b, successHeadSize+len(m.Value), TypeSuccess)
	b = append(b, m.Key[:]...)
	return append(b, m.Value...)
}

// AppendTo implements Message.
func (m Failure) AppendTo(b []byte) []byte {
	return append(appendHeader(b, FailureSize, TypeFailure), m.Key[:]...)
}

// AppendMarshal validates m and appends its wire form to b.
func AppendMarshal(b []byte, m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return b, err
	}
	return m.AppendTo(b), nil
}

// CheckHeader checks a header's size and type against the rules of the wire
// format, without the body. ReadMessage calls it before reading the body.
func CheckHeader(size int, t Type) error {
	if size < HeaderSize {
		return fmt.Errorf("%w: size %d", ErrShortSize, size)
	}
	var ok bool
	switch t {
	case TypeGet, TypeFailure:
		ok = size == GetSize
	case TypePut:
		ok = size > putHeadSize
	case TypeSuccess:
		ok = size > successHeadSize
	default:
		return fmt.Errorf("%w: %d", ErrUnknownType, uint16(t))
	}
	if !ok {
		return fmt.Errorf("%w: size %d for %v", ErrSizeMismatch, size, t)
	}
	return nil
}

// Parse parses one whole message: msg must hold exactly the number of bytes
// its size field says. The Value of a Put or Success aliases msg.
func Parse(msg []byte) (Message, error) {
	if len(msg) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrShortSize, len(msg))
	}
	size := int(binary.BigEndian.Uint16(msg))
	t := Type(binary.BigEndian.Uint16(msg[2:]))
	if err := CheckHeader(size, t); err != nil {
		return nil, err
	}
	if size != len(msg) {
		return nil, fmt.Errorf("%w: size field %d, message of %d bytes", ErrSizeMismatch, size, len(msg))
	}
	body := msg[HeaderSize:]
	switch t {
	case TypePut:
		m := Put{TTL: binary.BigEndian.Uint16(body), Replication: body[2]}
		copy(m.Key[:], body[4:])
		m.Value = body[4+KeySize:]
		return m, nil
	case TypeGet:
		var m Get
		copy(m.Key[:], body)
		return m, nil
	case TypeSuccess:
		m := Success{Value: body[KeySize:]}
		copy(m.Key[:], body)
		return m, nil
	default: // TypeFailure; CheckHeader rejected every other type.
		var m Failure
		copy(m.Key[:], body)
		return m, nil
	}
}

// ReadMessage reads one message from r. It checks the header (CheckHeader)
// before reading the body, so a violation is reported without reading or
// allocating more than the header. The returned message owns its memory.
//
// At a clean end of stream before the first byte it returns io.EOF; a stream
// that ends inside a message gives io.ErrUnexpectedEOF.
func ReadMessage(r *bufio.Reader) (Message, error) {
	hdr, err := r.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	size := int(binary.BigEndian.Uint16(hdr))
	t := Type(binary.BigEndian.Uint16(hdr[2:]))
	if err := CheckHeader(size, t); err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Parse(buf)
}
