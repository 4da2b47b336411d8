package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b Version
		want int
	}{
		{Version{1, 0}, Version{1, 0}, 0},
		{Version{1, 0}, Version{2, 0}, -1},
		{Version{2, 0}, Version{1, 9}, 1},
		{Version{1, 1}, Version{1, 2}, -1},
		{Version{1, 3}, Version{1, 2}, 1},
		{Version{}, Version{0, 1}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.a.String()+"_"+tt.b.String(), func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %d; want %d", tt.a, tt.b, got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != -tt.want {
				t.Errorf("%v.Compare(%v) = %d; want %d", tt.b, tt.a, got, -tt.want)
			}
		})
	}
	if !(Version{}).IsZero() || (Version{0, 1}).IsZero() {
		t.Errorf("IsZero wrong")
	}
}

func TestRecordValidate(t *testing.T) {
	ok := rec("a", 1)
	tests := []struct {
		name string
		mod  func(*Record)
		ok   bool
	}{
		{"valid", func(*Record) {}, true},
		{"max value", func(r *Record) { r.Value = make([]byte, MaxValueSize) }, true},
		{"empty value", func(r *Record) { r.Value = nil }, false},
		{"value too big", func(r *Record) { r.Value = make([]byte, MaxValueSize+1) }, false},
		{"no expiry", func(r *Record) { r.Expiry = time.Time{} }, false},
		{"expiry before 1970", func(r *Record) { r.Expiry = time.Unix(-5, 0) }, false},
		{"expiry after 2262", func(r *Record) { r.Expiry = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.mod(&r)
			err := r.validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidRecord)) {
				t.Errorf("validate() = %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

var testSecret = newRecordKey(bytes.Repeat([]byte{0x42}, 32))

func TestRecordRoundTrip(t *testing.T) {
	tests := []Record{
		rec("a", 1),
		{Key: testKey("b"), Value: []byte{0}, Expiry: time.Unix(0, 1), Version: Version{}, Replication: 0},
		{Key: testKey("c"), Value: bytes.Repeat([]byte{0xff}, MaxValueSize), Expiry: time.Unix(0, maxExpiryNanos),
			Version: Version{^uint64(0), ^uint64(0)}, Primary: true, Replication: 255},
	}
	for _, r := range tests {
		t.Run(string(r.Value[:min(8, len(r.Value))]), func(t *testing.T) {
			b := encodeRecord(testSecret, r)
			if len(b) != recordOverhead+len(r.Value) {
				t.Fatalf("len(encode) = %d; want %d", len(b), recordOverhead+len(r.Value))
			}
			got, err := openRecord(testSecret, r.Position(), b)
			if err != nil {
				t.Fatalf("openRecord(encode(r)) = %v", err)
			}
			if !sameRecord(got, r) {
				t.Errorf("openRecord(encode(%+v)) = %+v", r, got)
			}
		})
	}
}

// Every single-byte change of a stored record is caught, whichever field it
// hits; so are a wrong secret and a wrong position.
func TestRecordTamper(t *testing.T) {
	r := rec("tamper", 5)
	b := encodeRecord(testSecret, r)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := openRecord(testSecret, r.Position(), c); !errors.Is(err, ErrTampered) {
			t.Errorf("openRecord with byte %d flipped = %v; want ErrTampered", i, err)
		}
	}
	if _, err := openRecord(newRecordKey(bytes.Repeat([]byte{1}, 32)), r.Position(), b); !errors.Is(err, ErrTampered) {
		t.Errorf("openRecord with another secret = %v; want ErrTampered", err)
	}
	if _, err := openRecord(testSecret, PositionOf(testKey("other")), b); !errors.Is(err, ErrTampered) {
		t.Errorf("openRecord at another position = %v; want ErrTampered", err)
	}
}

func TestParseRecordRejects(t *testing.T) {
	good := encodeRecord(testSecret, rec("p", 1))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"header only", good[:recordHeader], "too short"},
		{"format 2", mod(func(b []byte) []byte { b[0] = 2; return b }), "format"},
		{"unknown flag", mod(func(b []byte) []byte { b[1] |= 0x80; return b }), "flags"},
		{"zero expiry", mod(func(b []byte) []byte { copy(b[3:11], make([]byte, 8)); return b }), "expiry"},
		{"negative expiry", mod(func(b []byte) []byte { b[3] = 0x80; return b }), "expiry"},
		{"zero length", mod(func(b []byte) []byte { b[59], b[60] = 0, 0; return b }), "value size"},
		{"length too big", mod(func(b []byte) []byte { b[59], b[60] = 0xff, 0xff; return b }), "value size"},
		{"truncated", good[:len(good)-1], "bytes for"},
		{"trailing byte", append(bytes.Clone(good), 0), "bytes for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRecord(tt.in)
			if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseRecord(%x) = %v; want ErrInvalidRecord about %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzRecordDecode(f *testing.F) {
	f.Add(encodeRecord(testSecret, rec("f", 1)))
	f.Add(encodeRecord(testSecret, Record{Key: testKey("g"), Value: []byte{1}, Expiry: time.Unix(0, 1)}))
	f.Add([]byte{1, 1, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("parseRecord(%x) = %v; want ErrInvalidRecord", b, err)
			}
			return
		}
		// Anything accepted re-encodes to the same bytes.
		body := appendRecordBody(nil, r)
		if !bytes.Equal(body, b[:len(b)-recordMACSize]) {
			t.Fatalf("appendRecordBody(parseRecord(%x)) = %x", b, body)
		}
		if err := r.validate(); err != nil {
			t.Fatalf("parseRecord(%x) accepted an invalid record: %v", b, err)
		}
		// And sealed, it opens to the same record.
		sealed := encodeRecord(testSecret, r)
		got, err := openRecord(testSecret, r.Position(), sealed)
		if err != nil || !sameRecord(got, r) {
			t.Fatalf("openRecord(encodeRecord(%+v)) = %+v, %v", r, got, err)
		}
		if !bytes.Equal(sealed[:len(sealed)-recordMACSize], body) {
			t.Fatalf("encodeRecord body differs")
		}
	})
}
