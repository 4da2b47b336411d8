package api

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

func FuzzParse(f *testing.F) {
	k := key("seed")
	for _, m := range []Message{
		Put{TTL: 60, Replication: 3, Key: k, Value: []byte("value")},
		Get{Key: k},
		Success{Key: k, Value: []byte("v")},
		Failure{Key: k},
	} {
		f.Add(m.AppendTo(nil))
	}
	for _, v := range violations {
		f.Add(v.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		rm, rerr := ReadMessage(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if rerr == nil && len(b) >= HeaderSize && int(b[0])<<8|int(b[1]) == len(b) {
				t.Fatalf("Parse(%x) error %v but ReadMessage = %v", b, err, rm)
			}
			return
		}
		if rerr != nil || !reflect.DeepEqual(rm, m) {
			t.Fatalf("ReadMessage(%x) = %v, %v; Parse gave %v", b, rm, rerr, m)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse(%x) = %v, which fails Validate: %v", b, m, err)
		}
		want := bytes.Clone(b)
		if m.Type() == TypePut {
			want[7] = 0 // the reserved byte is written as zero
		}
		if got := m.AppendTo(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendTo(Parse(%x)) = %x; want %x", b, got, want)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), uint16(60), uint8(3), []byte("key"), []byte("value"))
	f.Add(uint8(1), uint16(0), uint8(0), []byte{}, []byte{})
	f.Add(uint8(2), uint16(0), uint8(0), []byte("k"), []byte("v"))
	f.Add(uint8(3), uint16(0), uint8(0), []byte("k"), []byte(nil))
	f.Fuzz(func(t *testing.T, kind uint8, ttl uint16, repl uint8, k, v []byte) {
		var kk [KeySize]byte
		copy(kk[:], k)
		var m Message
		switch kind % 4 {
		case 0:
			m = Put{TTL: ttl, Replication: repl, Key: kk, Value: v}
		case 1:
			m = Get{Key: kk}
		case 2:
			m = Success{Key: kk, Value: v}
		case 3:
			m = Failure{Key: kk}
		}
		b, err := AppendMarshal(nil, m)
		if err != nil {
			if m.Validate() == nil {
				t.Fatalf("AppendMarshal(%v) = %v for a valid message", m, err)
			}
			return
		}
		got, err := Parse(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Parse(AppendMarshal(%v)) = %v, %v", m, got, err)
		}
	})
}
