// Package cryptotest builds throw-away cluster secrets for tests of other
// packages: a CA, node identities and TLS directories issued by it, and HMAC
// keyrings. Every helper fails the test on error.
package cryptotest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/durachord/durachord/crypto"
)

// NewCA returns a new in-memory cluster CA.
func NewCA(t testing.TB) *crypto.CA {
	t.Helper()
	ca, err := crypto.NewCA()
	if err != nil {
		t.Fatalf("NewCA() = %v", err)
	}
	return ca
}

// NewNodeCert issues a node certificate for address (HOST:PORT; the port
// does not matter to the certificate, 0 is fine).
func NewNodeCert(t testing.TB, ca *crypto.CA, address string) *crypto.NodeCert {
	t.Helper()
	nc, err := ca.Issue(address)
	if err != nil {
		t.Fatalf("Issue(%q) = %v", address, err)
	}
	return nc
}

// NewIdentity issues a node certificate for address and returns the identity
// it gives.
func NewIdentity(t testing.TB, ca *crypto.CA, address string) *crypto.Identity {
	t.Helper()
	id, err := NewNodeCert(t, ca, address).Identity()
	if err != nil {
		t.Fatalf("Identity() = %v", err)
	}
	return id
}

// WriteTLSDir issues a node certificate for address, writes ca.crt, node.crt
// and node.key into a new temporary directory and returns the directory and
// the certificate.
func WriteTLSDir(t testing.TB, ca *crypto.CA, address string) (string, *crypto.NodeCert) {
	t.Helper()
	nc := NewNodeCert(t, ca, address)
	dir := filepath.Join(t.TempDir(), "tls")
	if err := nc.WriteDir(dir, false); err != nil {
		t.Fatalf("WriteDir(%s) = %v", dir, err)
	}
	return dir, nc
}

// NewKeyring returns a keyring of one new random key.
func NewKeyring(t testing.TB) *crypto.Keyring {
	t.Helper()
	k := make([]byte, crypto.MinHMACKeyBytes)
	if _, err := rand.Read(k); err != nil {
		t.Fatalf("rand.Read = %v", err)
	}
	kr, err := crypto.NewKeyring(k)
	if err != nil {
		t.Fatalf("NewKeyring = %v", err)
	}
	return kr
}

// WriteKeysFile writes a new keys file (mode 0600) of n fresh keys into a
// temporary directory and returns its path.
func WriteKeysFile(t testing.TB, n int) string {
	t.Helper()
	var b []byte
	for range n {
		k, err := crypto.NewHMACKey()
		if err != nil {
			t.Fatalf("NewHMACKey() = %v", err)
		}
		b = append(b, k+"\n"...)
	}
	p := filepath.Join(t.TempDir(), "hmac.keys")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}
