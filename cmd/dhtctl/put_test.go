package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

func TestTTLSeconds(t *testing.T) {
	tests := []struct {
		in      time.Duration
		want    uint16
		wantErr bool
	}{
		{0, 0, false},
		{time.Millisecond, 1, false},
		{time.Second, 1, false},
		{1500 * time.Millisecond, 2, false},
		{time.Hour, 3600, false},
		{65535 * time.Second, 65535, false},
		{65536 * time.Second, 0, true},
		{-time.Second, 0, true},
	}
	for _, tt := range tests {
		got, err := ttlSeconds(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ttlSeconds(%v) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPut(t *testing.T) {
	svc, addr := serveMem(t)
	tests := []struct {
		name     string
		args     []string
		stdin    string
		code     int
		inStdout string
		inStderr string
		key      string
		value    string
	}{
		{"value", []string{"put", "--api", addr, "--ttl", "1h", "--replication", "3", "k1", "v1"}, "", exitOK, "stored 2 bytes", "", "k1", "v1"},
		{"stdin", []string{"put", "--api", addr, "k2", "-"}, "from stdin", exitOK, "stored 10 bytes", "", "k2", "from stdin"},
		{"json", []string{"put", "--api", addr, "--json", "--ttl", "90s", "k3", "v3"}, "", exitOK,
			`"size":2,"ttl_seconds":90,"replication":0,"newer":false}`, "", "k3", "v3"},
		{"ttl too long", []string{"put", "--api", addr, "--ttl", "19h", "k", "v"}, "", exitError, "", "18h12m15s", "", ""},
		{"replication too large", []string{"put", "--api", addr, "--replication", "256", "k", "v"}, "", exitError, "", "255", "", ""},
		{"empty value", []string{"put", "--api", addr, "k", "-"}, "", exitError, "", "1..65495", "", ""},
		{"value too long", []string{"put", "--api", addr, "k", "-"}, strings.Repeat("x", api.MaxValueSize+1), exitError, "", "65496 bytes", "", ""},
		{"one argument", []string{"put", "--api", addr, "k"}, "", exitError, "", "two arguments", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runWithInput(t, strings.NewReader(tt.stdin), tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.inStdout) || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("dhtctl %s = %d, stdout %q, stderr %q; want %d, stdout containing %q, stderr containing %q",
					strings.Join(tt.args, " "), code, stdout, stderr, tt.code, tt.inStdout, tt.inStderr)
			}
			if tt.key == "" {
				return
			}
			var k [api.KeySize]byte
			copy(k[:], tt.key)
			if v, err := svc.Get(context.Background(), k); err != nil || string(v) != tt.value {
				t.Fatalf("stored value of %q = %q, %v; want %q", tt.key, v, err, tt.value)
			}
			// What put stored, get reads back.
			if code, out, _ := runWithInput(t, nil, "get", "--api", addr, tt.key); code != exitOK || out != tt.value {
				t.Fatalf("dhtctl get %s = %d, %q; want 0, %q", tt.key, code, out, tt.value)
			}
		})
	}
}

// dropPuts is a Service that loses every PUT.
type dropPuts struct{}

func (dropPuts) Put(context.Context, api.Put) error { return nil }
func (dropPuts) Get(context.Context, [api.KeySize]byte) ([]byte, error) {
	return nil, api.ErrNotFound
}

func TestPutNotConfirmed(t *testing.T) {
	_, addr := serveWith(t, dropPuts{})
	code, _, stderr := runWithInput(t, nil, "put", "--api", addr, "k", "v")
	if code != exitError || !strings.Contains(stderr, "not confirmed") {
		t.Fatalf("put to a node that loses it = %d, %q; want %d, not confirmed", code, stderr, exitError)
	}
}
