package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durachord/durachord/crypto"
)

// hmac new --out writes the keys file that dhtd's --hmac-keys reads, for
// callers without a shell (the compose one-shot service).
func TestHMACNewOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hmac.keys")
	var stdout, stderr bytes.Buffer
	args := []string{"dhtctl", "hmac", "new", "--out", path}
	if code := run(args, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("run(%q) = %d; want %d (stderr %q)", args, code, exitOK, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("run(%q) printed %q; want nothing (the key goes to the file)", args, stdout.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %v; want 0600", path, mode)
	}
	kr, err := crypto.LoadKeyring(path)
	if err != nil {
		t.Fatalf("LoadKeyring(%s) = %v; want a keyring", path, err)
	}
	if kr.Len() != 1 {
		t.Errorf("LoadKeyring(%s).Len() = %d; want 1", path, kr.Len())
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// A second run must not replace the cluster key.
	stderr.Reset()
	if code := run(args, strings.NewReader(""), &stdout, &stderr); code != exitError {
		t.Errorf("run(%q) on an existing file = %d; want %d", args, code, exitError)
	}
	if !strings.Contains(stderr.String(), "exists") {
		t.Errorf("run(%q) on an existing file: stderr %q; want it to say the file exists", args, stderr.String())
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("run(%q) on an existing file changed it from %q to %q", args, before, after)
	}
}
