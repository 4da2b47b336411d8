package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
)

// runWithInput runs dhtctl with stdin and returns the exit code, stdout and
// stderr.
func runWithInput(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"dhtctl"}, args...), stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

// serveMem serves an in-memory store on a loopback port for the test.
func serveMem(t *testing.T) (*apitest.MemService, string) {
	t.Helper()
	svc := apitest.NewMemService()
	_, addr := apitest.Serve(t, api.DefaultConfig(), svc)
	return svc, addr
}

func TestParseKey(t *testing.T) {
	hexKey := strings.Repeat("ab", 32)
	var wantHex [api.KeySize]byte
	for i := range wantHex {
		wantHex[i] = 0xab
	}
	var short [api.KeySize]byte
	copy(short[:], "hello")
	var full [api.KeySize]byte
	copy(full[:], strings.Repeat("x", 32))
	var notHex [api.KeySize]byte
	tests := []struct {
		in      string
		want    [api.KeySize]byte
		wantErr bool
	}{
		{hexKey, wantHex, false},
		{strings.ToUpper(hexKey), wantHex, false},
		{"hello", short, false},
		{strings.Repeat("x", 32), full, false},
		{strings.Repeat("x", 33), notHex, true},
		{strings.Repeat("g", 64), notHex, true}, // 64 bytes, not hex: too long a string
		{"", notHex, true},
	}
	for _, tt := range tests {
		got, err := parseKey(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("parseKey(%q) = %x, %v; want %x, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestGet(t *testing.T) {
	svc, addr := serveMem(t)
	var k [api.KeySize]byte
	copy(k[:], "greeting")
	if err := svc.Put(context.Background(), api.Put{Key: k, Value: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	var bin [api.KeySize]byte
	copy(bin[:], "binary")
	if err := svc.Put(context.Background(), api.Put{Key: bin, Value: []byte{0xff, 0xfe}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"string key", []string{"get", "--api", addr, "greeting"}, exitOK, "hello", ""},
		{"hex key", []string{"get", "--api", addr, "6772656574696e67" + strings.Repeat("0", 48)}, exitOK, "hello", ""},
		{"json", []string{"get", "--api", addr, "--json", "greeting"}, exitOK,
			`{"key":"6772656574696e67` + strings.Repeat("0", 48) + `","value":"hello","encoding":"utf-8"}` + "\n", ""},
		{"json binary", []string{"get", "--api", addr, "--json", "binary"}, exitOK,
			`{"key":"` + hexOf(bin) + `","value":"//4=","encoding":"base64"}` + "\n", ""},
		{"not found", []string{"get", "--api", addr, "absent"}, exitNotFound, "", "not found"},
		{"bad key", []string{"get", "--api", addr, strings.Repeat("x", 33)}, exitError, "", "33 bytes"},
		{"no key", []string{"get", "--api", addr}, exitError, "", "KEY"},
		{"no node", []string{"get", "--api", "127.0.0.1:1", "k"}, exitError, "", "dial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runWithInput(t, nil, tt.args...)
			if code != tt.code || stdout != tt.stdout || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("dhtctl %s = %d, stdout %q, stderr %q; want %d, %q, stderr containing %q",
					strings.Join(tt.args, " "), code, stdout, stderr, tt.code, tt.stdout, tt.inStderr)
			}
			if code != exitOK && strings.Count(stderr, "\n") != 1 {
				t.Fatalf("stderr %q; want one line", stderr)
			}
		})
	}
}

func hexOf(k [api.KeySize]byte) string {
	return hex.EncodeToString(k[:])
}
