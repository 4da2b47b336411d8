package rpc

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/durachord/durachord/crypto"
)

func FuzzFrame(f *testing.F) {
	keys, err := crypto.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"jsonrpc":"2.0","method":"ping","id":1}`))
	f.Add([]byte("x"))
	f.Add(appendFrame(nil, keys, []byte(`{"protocol":"durachord-rpc","version":1}`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 33})
	const maxFrame = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		// Any body of a legal size survives a round trip.
		if len(data) >= 1 && crypto.MACSize+len(data) <= maxFrame {
			frame := appendFrame(nil, keys, data)
			got, err := readFrame(bytes.NewReader(frame), maxFrame, keys)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("readFrame(appendFrame(%x)) = %x, %v; want the body back", data, got, err)
			}
			bad := bytes.Clone(frame)
			bad[len(bad)-1] ^= 1
			if _, err := readFrame(bytes.NewReader(bad), maxFrame, keys); !errors.Is(err, ErrBadMAC) {
				t.Fatalf("readFrame(altered frame) = %v; want %v", err, ErrBadMAC)
			}
		}
		// Arbitrary input: accepted frames re-encode to exactly the bytes read.
		r := bytes.NewReader(data)
		body, err := readFrame(r, maxFrame, keys)
		if err != nil {
			if !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameTooLarge) &&
				!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("readFrame(%x) = %v; want a frame error", data, err)
			}
			return
		}
		consumed := data[:len(data)-r.Len()]
		if again := appendFrame(nil, keys, body); !bytes.Equal(again, consumed) {
			t.Fatalf("appendFrame(readFrame(%x)) = %x; want the input", consumed, again)
		}
	})
}
