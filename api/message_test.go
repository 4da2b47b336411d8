package api

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func key(s string) [KeySize]byte {
	var k [KeySize]byte
	copy(k[:], s)
	return k
}

// header returns the 4-byte header for size and type.
func header(size int, t Type) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(size)), uint16(t))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestMessageRoundTrip(t *testing.T) {
	k := key("k")
	tests := []struct {
		name string
		m    Message
		wire []byte
	}{
		{"put", Put{TTL: 0x0102, Replication: 3, Key: k, Value: []byte("v")},
			cat(header(41, TypePut), []byte{1, 2, 3, 0}, k[:], []byte("v"))},
		{"put max value", Put{TTL: 1, Replication: 1, Key: k, Value: bytes.Repeat([]byte{7}, MaxValueSize)},
			cat(header(65535, TypePut), []byte{0, 1, 1, 0}, k[:], bytes.Repeat([]byte{7}, MaxValueSize))},
		{"get", Get{Key: k}, cat(header(36, TypeGet), k[:])},
		{"success", Success{Key: k, Value: []byte("hello")}, cat(header(41, TypeSuccess), k[:], []byte("hello"))},
		{"success max value", Success{Key: k, Value: bytes.Repeat([]byte{9}, MaxSuccessValueSize)},
			cat(header(65535, TypeSuccess), k[:], bytes.Repeat([]byte{9}, MaxSuccessValueSize))},
		{"failure", Failure{Key: k}, cat(header(36, TypeFailure), k[:])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendMarshal([]byte("prefix"), tt.m)
			if err != nil {
				t.Fatalf("AppendMarshal(%v) error: %v", tt.m.Type(), err)
			}
			if want := cat([]byte("prefix"), tt.wire); !bytes.Equal(got, want) {
				t.Fatalf("AppendMarshal(%v) = %x; want %x", tt.m.Type(), got, want)
			}
			m, err := Parse(tt.wire)
			if err != nil || !reflect.DeepEqual(m, tt.m) {
				t.Fatalf("Parse(%x) = %v, %v; want %v", tt.wire, m, err, tt.m)
			}
			m, err = ReadMessage(bufio.NewReader(bytes.NewReader(tt.wire)))
			if err != nil || !reflect.DeepEqual(m, tt.m) {
				t.Fatalf("ReadMessage(%x) = %v, %v; want %v", tt.wire, m, err, tt.m)
			}
		})
	}
}

func TestPutReservedByteIgnored(t *testing.T) {
	k := key("k")
	wire := cat(header(41, TypePut), []byte{0, 5, 2, 0xff}, k[:], []byte("v"))
	m, err := Parse(wire)
	want := Put{TTL: 5, Replication: 2, Key: k, Value: []byte("v")}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("Parse(%x) = %v, %v; want %v", wire, m, err, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"put empty value", Put{}, ErrValueSize},
		{"put value too long", Put{Value: make([]byte, MaxValueSize+1)}, ErrValueSize},
		{"put max value", Put{Value: make([]byte, MaxValueSize)}, nil},
		{"success empty value", Success{}, ErrValueSize},
		{"success value too long", Success{Value: make([]byte, MaxSuccessValueSize+1)}, ErrValueSize},
		{"get", Get{}, nil},
		{"failure", Failure{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Validate(); !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v; want %v", err, tt.want)
			}
			if _, err := AppendMarshal(nil, tt.m); !errors.Is(err, tt.want) {
				t.Fatalf("AppendMarshal() error = %v; want %v", err, tt.want)
			}
		})
	}
}

// violations lists headers (with enough body to be whole) that break the
// size and type rules.
var violations = []struct {
	name string
	wire []byte
	want error
}{
	{"size 0", header(0, TypeGet), ErrShortSize},
	{"size 3", header(3, TypeGet), ErrShortSize},
	{"get 35", cat(header(35, TypeGet), make([]byte, 31)), ErrSizeMismatch},
	{"get 37", cat(header(37, TypeGet), make([]byte, 33)), ErrSizeMismatch},
	{"failure 35", cat(header(35, TypeFailure), make([]byte, 31)), ErrSizeMismatch},
	{"failure 37", cat(header(37, TypeFailure), make([]byte, 33)), ErrSizeMismatch},
	{"put 40 (empty value)", cat(header(40, TypePut), make([]byte, 36)), ErrSizeMismatch},
	{"put 4", header(4, TypePut), ErrSizeMismatch},
	{"success 36 (empty value)", cat(header(36, TypeSuccess), make([]byte, 32)), ErrSizeMismatch},
	{"success 4", header(4, TypeSuccess), ErrSizeMismatch},
	{"unknown type 649", cat(header(36, 649), make([]byte, 32)), ErrUnknownType},
	{"unknown type 654", cat(header(36, 654), make([]byte, 32)), ErrUnknownType},
	{"unknown type 0", header(4, 0), ErrUnknownType},
}

func TestParseViolations(t *testing.T) {
	for _, tt := range violations {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := Parse(tt.wire); !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%x) = %v, %v; want %v", tt.wire, m, err, tt.want)
			}
		})
	}
	k := key("k")
	for _, tt := range []struct {
		name string
		wire []byte
		want error
	}{
		{"empty", nil, ErrShortSize},
		{"two bytes", []byte{0, 36}, ErrShortSize},
		{"size field above length", cat(header(36, TypeGet), k[:31]), ErrSizeMismatch},
		{"size field below length", cat(header(41, TypePut), []byte{0, 1, 1, 0}, k[:], []byte("vv")), ErrSizeMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := Parse(tt.wire); !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%x) = %v, %v; want %v", tt.wire, m, err, tt.want)
			}
		})
	}
}

// headerOnlyReader fails the test if more than the header is read.
type headerOnlyReader struct {
	t    *testing.T
	data []byte
}

func (r *headerOnlyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.t.Fatalf("ReadMessage read past the header")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadMessageChecksHeaderFirst(t *testing.T) {
	for _, tt := range violations {
		t.Run(tt.name, func(t *testing.T) {
			// Only the header is available: a reader that reads the body
			// first would fail the test instead of reporting the violation.
			r := bufio.NewReaderSize(&headerOnlyReader{t: t, data: tt.wire[:HeaderSize]}, 16)
			if m, err := ReadMessage(r); !errors.Is(err, tt.want) {
				t.Fatalf("ReadMessage(%x) = %v, %v; want %v", tt.wire[:HeaderSize], m, err, tt.want)
			}
		})
	}
}

func TestReadMessageEOF(t *testing.T) {
	k := key("k")
	get := cat(header(36, TypeGet), k[:])
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"inside header", get[:3], io.ErrUnexpectedEOF},
		{"inside body", get[:20], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := ReadMessage(bufio.NewReader(bytes.NewReader(tt.in))); !errors.Is(err, tt.want) {
				t.Fatalf("ReadMessage(%x) = %v, %v; want %v", tt.in, m, err, tt.want)
			}
		})
	}
}

func TestReadMessageSequenceOwnsMemory(t *testing.T) {
	var wire []byte
	want := []Message{
		Put{TTL: 1, Replication: 1, Key: key("a"), Value: []byte(strings.Repeat("x", 5000))},
		Get{Key: key("a")},
		Success{Key: key("b"), Value: []byte("y")},
		Failure{Key: key("c")},
	}
	for _, m := range want {
		wire = m.AppendTo(wire)
	}
	r := bufio.NewReader(bytes.NewReader(wire))
	var got []Message
	for {
		m, err := ReadMessage(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadMessage: %v", err)
		}
		got = append(got, m)
	}
	clear(wire)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadMessage sequence = %v; want %v", got, want)
	}
}
