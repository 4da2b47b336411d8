package crypto_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/crypto/cryptotest"
)

func fileMode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := crypto.InitCA(dir); err != nil {
		t.Fatalf("InitCA(%s) = %v; want nil", dir, err)
	}
	if m := fileMode(t, filepath.Join(dir, "ca.key")); m != 0o600 {
		t.Errorf("ca.key mode = %04o; want 0600", m)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err := crypto.InitCA(dir); !errors.Is(err, crypto.ErrExists) {
		t.Errorf("second InitCA(%s) = %v; want %v", dir, err, crypto.ErrExists)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if !bytes.Equal(before, after) {
		t.Error("second InitCA changed ca.key")
	}
	ca, err := crypto.LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA(%s) = %v; want nil", dir, err)
	}
	if !ca.Cert.IsCA {
		t.Error("CA certificate is not a CA")
	}
	if got, min := time.Until(ca.Cert.NotAfter), 9*365*24*time.Hour; got < min {
		t.Errorf("CA validity %v; want at least %v", got, min)
	}
}

func TestInitCARefusesHalfPresent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := crypto.InitCA(dir); !errors.Is(err, crypto.ErrExists) {
		t.Fatalf("InitCA with ca.key present = %v; want %v", err, crypto.ErrExists)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("InitCA left ca.crt behind: %v", err)
	}
}

func TestLoadCAErrors(t *testing.T) {
	good := t.TempDir()
	if err := crypto.InitCA(good); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := crypto.InitCA(other); err != nil {
		t.Fatal(err)
	}
	copyFile := func(t *testing.T, from, to string, mode fs.FileMode) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(to, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    error
		inMsg   string
	}{
		{"missing", func(t *testing.T, dir string) {}, fs.ErrNotExist, "ca.crt"},
		{"key-mode", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(good, "ca.crt"), filepath.Join(dir, "ca.crt"), 0o644)
			copyFile(t, filepath.Join(good, "ca.key"), filepath.Join(dir, "ca.key"), 0o644)
		}, crypto.ErrInsecureFile, "ca.key"},
		{"key-mismatch", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(good, "ca.crt"), filepath.Join(dir, "ca.crt"), 0o644)
			copyFile(t, filepath.Join(other, "ca.key"), filepath.Join(dir, "ca.key"), 0o600)
		}, crypto.ErrKeyMismatch, "ca.key"},
		{"garbage-cert", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("hello"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, crypto.ErrInvalidPEM, "ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.prepare(t, dir)
			_, err := crypto.LoadCA(dir)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("LoadCA = %v; want %v naming %s", err, tc.want, tc.inMsg)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := cryptotest.NewCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		address string
		ip      string
		dns     string
	}{
		{"127.0.0.1:7401", "127.0.0.1", ""},
		{"10.1.2.3:0", "10.1.2.3", ""},
		{"[::1]:7401", "::1", ""},
		{"node-1.example.org:7401", "", "node-1.example.org"},
		{"Node3:9", "", "node3"},
	} {
		t.Run(tc.address, func(t *testing.T) {
			nc, err := ca.Issue(tc.address)
			if err != nil {
				t.Fatalf("Issue(%q) = %v; want nil", tc.address, err)
			}
			c := nc.Cert
			if tc.ip != "" {
				if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP(tc.ip)) || len(c.DNSNames) != 0 {
					t.Errorf("Issue(%q) SANs = %v %v; want IP %s only", tc.address, c.IPAddresses, c.DNSNames, tc.ip)
				}
			} else if len(c.DNSNames) != 1 || c.DNSNames[0] != tc.dns || len(c.IPAddresses) != 0 {
				t.Errorf("Issue(%q) SANs = %v %v; want DNS %s only", tc.address, c.IPAddresses, c.DNSNames, tc.dns)
			}
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("Issue(%q): verify for usage %v = %v", tc.address, usage, err)
				}
			}
			host, _, _ := net.SplitHostPort(tc.address)
			if err := c.VerifyHostname(host); err != nil {
				t.Errorf("Issue(%q): VerifyHostname(%s) = %v", tc.address, host, err)
			}
			if got, min := time.Until(c.NotAfter), 700*24*time.Hour; got < min {
				t.Errorf("Issue(%q) validity %v; want at least %v", tc.address, got, min)
			}
			spki, err := x509.MarshalPKIXPublicKey(c.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if want := chord.ID(sha256.Sum256(spki)); nc.ID != want || crypto.NodeID(c) != want {
				t.Errorf("Issue(%q) ID = %v, NodeID = %v; want SHA-256 of SPKI %v", tc.address, nc.ID, crypto.NodeID(c), want)
			}
		})
	}
	t.Run("distinct", func(t *testing.T) {
		a, b := cryptotest.NewNodeCert(t, ca, "127.0.0.1:1"), cryptotest.NewNodeCert(t, ca, "127.0.0.1:1")
		if a.ID == b.ID {
			t.Errorf("two certificates for one address share ID %v", a.ID)
		}
	})
}

func TestIssueBadAddress(t *testing.T) {
	ca := cryptotest.NewCA(t)
	for _, address := range []string{"", "nohost", ":7401", "host:", "host:http", "host:65536", "0.0.0.0:7401", "[::]:1", "bad_-.:1", "a b:1", "-x:1"} {
		t.Run(address, func(t *testing.T) {
			if _, err := ca.Issue(address); !errors.Is(err, crypto.ErrInvalidAddress) {
				t.Errorf("Issue(%q) = %v; want %v", address, err, crypto.ErrInvalidAddress)
			}
		})
	}
}

func TestNodeCertWriteDirAndLoadIdentity(t *testing.T) {
	ca := cryptotest.NewCA(t)
	nc := cryptotest.NewNodeCert(t, ca, "127.0.0.1:7401")
	dir := filepath.Join(t.TempDir(), "tls")
	if err := nc.WriteDir(dir, false); err != nil {
		t.Fatalf("WriteDir = %v; want nil", err)
	}
	if m := fileMode(t, filepath.Join(dir, "node.key")); m != 0o600 {
		t.Errorf("node.key mode = %04o; want 0600", m)
	}
	if err := nc.WriteDir(dir, false); !errors.Is(err, crypto.ErrExists) {
		t.Errorf("second WriteDir = %v; want %v", err, crypto.ErrExists)
	}
	nc2 := cryptotest.NewNodeCert(t, ca, "127.0.0.1:7401")
	if err := nc2.WriteDir(dir, true); err != nil {
		t.Fatalf("WriteDir(overwrite) = %v; want nil", err)
	}
	id, err := crypto.LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity = %v; want nil", err)
	}
	if id.ID != nc2.ID || id.ID != crypto.NodeID(id.Leaf) {
		t.Errorf("LoadIdentity ID = %v; want %v", id.ID, nc2.ID)
	}
	if m := fileMode(t, filepath.Join(dir, "node.key")); m != 0o600 {
		t.Errorf("node.key mode after overwrite = %04o; want 0600", m)
	}
}

func TestLoadIdentityErrors(t *testing.T) {
	ca := cryptotest.NewCA(t)
	otherCA := cryptotest.NewCA(t)
	write := func(t *testing.T, dir, name string, b []byte, mode fs.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    error
		inMsg   string
	}{
		{"missing-node-crt", func(t *testing.T, dir string) {
			_ = os.Remove(filepath.Join(dir, "node.crt"))
		}, fs.ErrNotExist, "node.crt"},
		{"missing-ca", func(t *testing.T, dir string) {
			_ = os.Remove(filepath.Join(dir, "ca.crt"))
		}, fs.ErrNotExist, "ca.crt"},
		{"key-world-readable", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "node.key"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, crypto.ErrInsecureFile, "node.key"},
		{"key-of-other-cert", func(t *testing.T, dir string) {
			write(t, dir, "node.key", cryptotest.NewNodeCert(t, ca, "127.0.0.1:1").KeyPEM, 0o600)
		}, crypto.ErrKeyMismatch, "node.key"},
		{"other-ca", func(t *testing.T, dir string) {
			write(t, dir, "ca.crt", otherCA.CertPEM, 0o644)
		}, crypto.ErrInvalidCertificate, "node.crt"},
		{"ca-is-leaf", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "node.crt"))
			write(t, dir, "ca.crt", b, 0o644)
		}, crypto.ErrInvalidCertificate, "ca.crt"},
		{"garbage-key", func(t *testing.T, dir string) {
			write(t, dir, "node.key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		}, crypto.ErrInvalidPEM, "node.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := cryptotest.WriteTLSDir(t, ca, "127.0.0.1:7401")
			tc.prepare(t, dir)
			_, err := crypto.LoadIdentity(dir)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("LoadIdentity = %v; want %v naming %s", err, tc.want, tc.inMsg)
			}
		})
	}
}

// handshake runs a TLS handshake between the two configurations over an
// in-memory pipe and returns both ends' errors and the server's view.
func handshake(t *testing.T, server, client *tls.Config) (cs tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := tls.Server(c1, server)
	cli := tls.Client(c2, client)
	var wg sync.WaitGroup
	wg.Go(func() {
		serverErr = srv.HandshakeContext(ctx)
		if serverErr != nil {
			_ = c1.Close()
		}
		cs = srv.ConnectionState()
	})
	clientErr = cli.HandshakeContext(ctx)
	if clientErr == nil {
		// TLS 1.3: the client learns of a rejected client certificate only on
		// its first read.
		_ = cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var b [1]byte
		if _, err := cli.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			clientErr = err
		}
	} else {
		_ = c2.Close()
	}
	wg.Wait()
	return cs, serverErr, clientErr
}

func TestTLSConfigs(t *testing.T) {
	ca := cryptotest.NewCA(t)
	srvID := cryptotest.NewIdentity(t, ca, "127.0.0.1:7401")
	cliID := cryptotest.NewIdentity(t, ca, "127.0.0.1:7402")
	stranger := cryptotest.NewIdentity(t, cryptotest.NewCA(t), "127.0.0.1:7403")

	t.Run("ok", func(t *testing.T) {
		cs, serr, cerr := handshake(t, srvID.ServerConfig(), cliID.ClientConfig("127.0.0.1", srvID.ID))
		if serr != nil || cerr != nil {
			t.Fatalf("handshake = %v, %v; want nil, nil", serr, cerr)
		}
		if cs.Version != tls.VersionTLS13 {
			t.Errorf("TLS version %x; want TLS 1.3", cs.Version)
		}
		if got, err := crypto.PeerID(cs); err != nil || got != cliID.ID {
			t.Errorf("PeerID = %v, %v; want %v", got, err, cliID.ID)
		}
	})
	t.Run("zero-expect", func(t *testing.T) {
		_, serr, cerr := handshake(t, srvID.ServerConfig(), cliID.ClientConfig("127.0.0.1", chord.ID{}))
		if serr != nil || cerr != nil {
			t.Fatalf("handshake = %v, %v; want nil, nil", serr, cerr)
		}
	})
	t.Run("identity-mismatch", func(t *testing.T) {
		_, _, cerr := handshake(t, srvID.ServerConfig(), cliID.ClientConfig("127.0.0.1", cliID.ID))
		if !errors.Is(cerr, chord.ErrIdentityMismatch) {
			t.Fatalf("client handshake = %v; want %v", cerr, chord.ErrIdentityMismatch)
		}
	})
	t.Run("wrong-host", func(t *testing.T) {
		_, _, cerr := handshake(t, srvID.ServerConfig(), cliID.ClientConfig("127.0.0.9", srvID.ID))
		if cerr == nil {
			t.Fatal("client handshake with a host not in the SAN succeeded")
		}
	})
	t.Run("server-from-other-ca", func(t *testing.T) {
		_, _, cerr := handshake(t, stranger.ServerConfig(), cliID.ClientConfig("127.0.0.1", chord.ID{}))
		var uae x509.UnknownAuthorityError
		if !errors.As(cerr, &uae) {
			t.Fatalf("client handshake with stranger = %v; want x509.UnknownAuthorityError", cerr)
		}
	})
	t.Run("client-from-other-ca", func(t *testing.T) {
		_, serr, cerr := handshake(t, srvID.ServerConfig(), stranger.ClientConfig("127.0.0.1", chord.ID{}))
		if serr == nil || cerr == nil {
			t.Fatalf("handshake with stranger client = %v, %v; want both failing", serr, cerr)
		}
	})
	t.Run("no-client-cert", func(t *testing.T) {
		cfg := cliID.ClientConfig("127.0.0.1", chord.ID{})
		cfg.Certificates = nil
		_, serr, _ := handshake(t, srvID.ServerConfig(), cfg)
		if serr == nil {
			t.Fatal("server accepted a client without certificate")
		}
	})
	t.Run("configs", func(t *testing.T) {
		for _, cfg := range []*tls.Config{srvID.ServerConfig(), cliID.ClientConfig("x", chord.ID{})} {
			if cfg.MinVersion != tls.VersionTLS13 || cfg.InsecureSkipVerify {
				t.Errorf("config MinVersion %x, InsecureSkipVerify %v; want TLS 1.3 and false", cfg.MinVersion, cfg.InsecureSkipVerify)
			}
		}
		if cfg := srvID.ServerConfig(); cfg.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("server ClientAuth = %v; want RequireAndVerifyClientCert", cfg.ClientAuth)
		}
	})
	t.Run("peer-id-none", func(t *testing.T) {
		if _, err := crypto.PeerID(tls.ConnectionState{}); !errors.Is(err, crypto.ErrNoPeerCertificate) {
			t.Errorf("PeerID(no certs) = %v; want %v", err, crypto.ErrNoPeerCertificate)
		}
	})
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParseKeyring(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  error
		keys  int
	}{
		{"one", b64(key(1)) + "\n", nil, 1},
		{"comments-blanks", "# cluster keys\n\n  " + b64(key(1)) + "  \n# old\n" + b64(key(2)), nil, 2},
		{"unpadded", strings.TrimRight(b64(key(1)), "="), nil, 1},
		{"empty", "", crypto.ErrNoKeys, 0},
		{"only-comments", "# nothing\n\n", crypto.ErrNoKeys, 0},
		{"short", b64(make([]byte, 31)), crypto.ErrInvalidKey, 0},
		{"not-base64", "!!!!", crypto.ErrInvalidKey, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := crypto.ParseKeyring(strings.NewReader(tc.input))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseKeyring(%q) = %v; want %v", tc.input, err, tc.want)
			}
			if err == nil && kr.Len() != tc.keys {
				t.Errorf("ParseKeyring(%q) has %d keys; want %d", tc.input, kr.Len(), tc.keys)
			}
		})
	}
	if _, err := crypto.ParseKeyring(strings.NewReader("# x\n" + b64(key(1)) + "\nzz\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("ParseKeyring(bad line 3) = %v; want an error naming line 3", err)
	}
}

func TestKeyringSignVerifyRotate(t *testing.T) {
	old, _ := crypto.NewKeyring(key(1))
	both, _ := crypto.NewKeyring(key(2), key(1))
	fresh, _ := crypto.NewKeyring(key(2))
	msg := []byte("frame body")
	macOld, macBoth := old.Sign(msg), both.Sign(msg)
	if len(macOld) != crypto.MACSize {
		t.Fatalf("Sign length %d; want %d", len(macOld), crypto.MACSize)
	}
	for _, tc := range []struct {
		name string
		kr   *crypto.Keyring
		mac  []byte
		msg  []byte
		want bool
	}{
		{"own", old, macOld, msg, true},
		{"old-signed-verified-by-both", both, macOld, msg, true},
		{"both-signs-with-new", fresh, macBoth, msg, true},
		{"old-mac-after-rotation", fresh, macOld, msg, false},
		{"altered-msg", old, macOld, []byte("frame bodY"), false},
		{"truncated-mac", old, macOld[:31], msg, false},
		{"nil-mac", old, nil, msg, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kr.Verify(tc.msg, tc.mac); got != tc.want {
				t.Errorf("Verify(%q, %x) = %v; want %v", tc.msg, tc.mac, got, tc.want)
			}
		})
	}
	if _, err := crypto.NewKeyring(); !errors.Is(err, crypto.ErrNoKeys) {
		t.Errorf("NewKeyring() = %v; want %v", err, crypto.ErrNoKeys)
	}
	if _, err := crypto.NewKeyring(key(1)[:16]); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("NewKeyring(16 bytes) = %v; want %v", err, crypto.ErrInvalidKey)
	}
}

// TestMACReuse: a reused MAC signs and verifies exactly as its keyring does,
// message after message, and follows Replace.
func TestMACReuse(t *testing.T) {
	kr, _ := crypto.NewKeyring(key(1))
	m := kr.NewMAC()
	check := func(step string) {
		t.Helper()
		for _, msg := range [][]byte{[]byte("first"), []byte("second, longer than the first"), []byte("first")} {
			if got, want := m.AppendSign(nil, msg), kr.Sign(msg); !bytes.Equal(got, want) {
				t.Fatalf("%s: MAC.AppendSign(%q) = %x; want %x", step, msg, got, want)
			}
			if !m.Verify(msg, kr.Sign(msg)) {
				t.Fatalf("%s: MAC.Verify(%q, own signature) = false", step, msg)
			}
			if m.Verify(append([]byte("x"), msg...), kr.Sign(msg)) {
				t.Fatalf("%s: MAC.Verify(altered %q) = true", step, msg)
			}
		}
	}
	check("first key")
	old := kr.Sign([]byte("m"))
	both, _ := crypto.NewKeyring(key(2), key(1))
	kr.Replace(both)
	check("rotating")
	if !m.Verify([]byte("m"), old) {
		t.Fatal("MAC.Verify(signed with the second key) = false during a rotation")
	}
	fresh, _ := crypto.NewKeyring(key(2))
	kr.Replace(fresh)
	check("rotated")
	if m.Verify([]byte("m"), old) {
		t.Fatal("MAC.Verify(signed with a retired key) = true")
	}
}

func TestKeyringReplaceConcurrent(t *testing.T) {
	kr, _ := crypto.NewKeyring(key(1))
	next, _ := crypto.NewKeyring(key(2), key(1))
	msg := []byte("m")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if !kr.Verify(msg, kr.Sign(msg)) {
					t.Error("Verify(Sign(msg)) = false during Replace")
					return
				}
			}
		})
	}
	kr.Replace(next)
	wg.Wait()
	if kr.Len() != 2 {
		t.Errorf("Len after Replace = %d; want 2", kr.Len())
	}
	onlyNew, _ := crypto.NewKeyring(key(2))
	if !onlyNew.Verify(msg, kr.Sign(msg)) {
		t.Error("after Replace, Sign does not use the new first key")
	}
}

func TestLoadKeyring(t *testing.T) {
	p := cryptotest.WriteKeysFile(t, 2)
	kr, err := crypto.LoadKeyring(p)
	if err != nil || kr.Len() != 2 {
		t.Fatalf("LoadKeyring = %v, %v; want 2 keys", kr, err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.LoadKeyring(p); !errors.Is(err, crypto.ErrInsecureFile) {
		t.Errorf("LoadKeyring(mode 0640) = %v; want %v", err, crypto.ErrInsecureFile)
	}
	if _, err := crypto.LoadKeyring(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyring(missing) = %v; want %v", err, fs.ErrNotExist)
	}
}

func TestNewHMACKey(t *testing.T) {
	a, err := crypto.NewHMACKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := crypto.NewHMACKey()
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("NewHMACKey() = %q: decodes to %d bytes, %v; want 32 bytes", a, len(raw), err)
	}
	if a == b {
		t.Errorf("NewHMACKey() twice = %q; want distinct keys", a)
	}
	if _, err := crypto.ParseKeyring(strings.NewReader(a)); err != nil {
		t.Errorf("ParseKeyring(NewHMACKey()) = %v; want nil", err)
	}
}

func TestRenewKeepsID(t *testing.T) {
	ca := cryptotest.NewCA(t)
	dir, old := cryptotest.WriteTLSDir(t, ca, "10.1.2.3:7400")
	for _, tc := range []struct {
		name, address, want string
	}{
		{"address from the certificate", "", "10.1.2.3:7400"},
		{"new address", "node7.example:7400", "node7.example:7400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := ca.Renew(dir, tc.address)
			if err != nil {
				t.Fatalf("Renew(%q) = %v", tc.address, err)
			}
			if nc.ID != old.ID {
				t.Errorf("Renew ID = %v; want the old ID %v", nc.ID, old.ID)
			}
			if nc.Address != tc.want || nc.Cert.Subject.CommonName != tc.want {
				t.Errorf("Renew address = %q (CN %q); want %q", nc.Address, nc.Cert.Subject.CommonName, tc.want)
			}
			if nc.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
				t.Error("Renew reused the old serial number")
			}
			if _, err := nc.Identity(); err != nil {
				t.Errorf("renewed certificate does not load as an identity: %v", err)
			}
		})
	}
	if _, err := ca.Renew(t.TempDir(), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Renew of an empty folder = %v; want %v", err, fs.ErrNotExist)
	}
	if _, err := ca.Renew(dir, "no-port"); !errors.Is(err, crypto.ErrInvalidAddress) {
		t.Errorf("Renew with a bad address = %v; want %v", err, crypto.ErrInvalidAddress)
	}
}

// Reload: a renewed certificate (same key) is what the next handshakes
// present, on both sides; a CA bundle loaded into a running node admits
// peers of the new CA; a certificate of another key is refused and changes
// nothing.
func TestIdentityReload(t *testing.T) {
	ca := cryptotest.NewCA(t)
	dir, first := cryptotest.WriteTLSDir(t, ca, "127.0.0.1:7401")
	srv, err := crypto.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	cli := cryptotest.NewIdentity(t, ca, "127.0.0.1:7402")
	serverCfg := srv.ServerConfig() // built once, as the RPC server does

	serial := func(cs tls.ConnectionState) string { return cs.PeerCertificates[0].SerialNumber.String() }
	// The client's view of the server's certificate.
	var seen tls.ConnectionState
	clientCfg := func() *tls.Config {
		cfg := cli.ClientConfig("127.0.0.1", srv.ID)
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { seen = cs; return verify(cs) }
		return cfg
	}
	if _, serr, cerr := handshake(t, serverCfg, clientCfg()); serr != nil || cerr != nil {
		t.Fatalf("handshake before reload = %v, %v", serr, cerr)
	}
	if got, want := serial(seen), first.Cert.SerialNumber.String(); got != want {
		t.Fatalf("server presented serial %s; want %s", got, want)
	}

	renewed, err := ca.Renew(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	next, err := renewed.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(next); err != nil {
		t.Fatalf("Reload(renewed) = %v", err)
	}
	if srv.Current() != next || srv.ID != first.ID {
		t.Errorf("after Reload: Current() is not the renewed identity or the ID changed")
	}
	// Server side: the listener's config, built before, presents the new one.
	if _, serr, cerr := handshake(t, serverCfg, clientCfg()); serr != nil || cerr != nil {
		t.Fatalf("handshake after reload = %v, %v", serr, cerr)
	}
	if got, want := serial(seen), renewed.Cert.SerialNumber.String(); got != want {
		t.Errorf("server presented serial %s after reload; want the renewed %s", got, want)
	}
	// Client side: a dial after the reload presents the new one.
	cs, serr, cerr := handshake(t, cli.ServerConfig(), srv.ClientConfig("127.0.0.1", cli.ID))
	if serr != nil || cerr != nil {
		t.Fatalf("dial after reload = %v, %v", serr, cerr)
	}
	if got, want := serial(cs), renewed.Cert.SerialNumber.String(); got != want {
		t.Errorf("client presented serial %s after reload; want the renewed %s", got, want)
	}

	// Another key: refused, the renewed identity stays.
	other := cryptotest.NewIdentity(t, ca, "127.0.0.1:7401")
	if err := srv.Reload(other); !errors.Is(err, crypto.ErrKeyMismatch) {
		t.Errorf("Reload(another key) = %v; want %v", err, crypto.ErrKeyMismatch)
	}
	if srv.Current() != next {
		t.Errorf("a refused Reload changed the identity in use")
	}

	// CA rotation: a peer of a new CA is refused until the node loads a
	// bundle of both CAs (same node certificate).
	newCA := cryptotest.NewCA(t)
	both := append(slices.Clone(ca.CertPEM), newCA.CertPEM...)
	nc := cryptotest.NewNodeCert(t, newCA, "127.0.0.1:7403")
	newcomer, err := crypto.NewIdentity(both, nc.CertPEM, nc.KeyPEM) // trusts both, as during a rotation
	if err != nil {
		t.Fatal(err)
	}
	if _, serr, _ := handshake(t, serverCfg, newcomer.ClientConfig("127.0.0.1", chord.ID{})); serr == nil {
		t.Fatal("a peer of a CA the node does not trust was admitted")
	}
	bundle, err := crypto.NewIdentity(both, renewed.CertPEM, renewed.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(bundle); err != nil {
		t.Fatalf("Reload(bundle) = %v", err)
	}
	if _, serr, _ := handshake(t, serverCfg, newcomer.ClientConfig("127.0.0.1", chord.ID{})); serr != nil {
		t.Errorf("a peer of the new CA after loading the bundle: server handshake = %v", serr)
	}
}

// TestPositionIDs: position 0 is the node ID, the candidates are distinct
// and fixed by the key, and PositionIndex finds each and nothing else.
func TestPositionIDs(t *testing.T) {
	ca := cryptotest.NewCA(t)
	a, b := cryptotest.NewIdentity(t, ca, "127.0.0.1:1"), cryptotest.NewIdentity(t, ca, "127.0.0.1:2")
	if got := crypto.PositionID(a.Leaf, 0); got != a.ID {
		t.Fatalf("PositionID(0) = %v; want the node ID %v", got, a.ID)
	}
	seen := make(map[chord.ID]bool)
	for i := range crypto.PositionCandidates {
		id := crypto.PositionID(a.Leaf, i)
		if seen[id] {
			t.Fatalf("position %d repeats an earlier one", i)
		}
		seen[id] = true
		if j, ok := crypto.PositionIndex(a.Leaf, id); !ok || j != i {
			t.Errorf("PositionIndex(PositionID(%d)) = %d, %v", i, j, ok)
		}
		if _, ok := crypto.PositionIndex(b.Leaf, id); ok {
			t.Errorf("another key produces position %d", i)
		}
	}
	want := sha256.Sum256(append(slices.Clone(a.Leaf.RawSubjectPublicKeyInfo), 0, 0, 0, 5))
	if got := crypto.PositionID(a.Leaf, 5); got != chord.ID(want) {
		t.Errorf("PositionID(5) = %v; want SHA-256(SPKI || 00000005) = %x", got, want)
	}
	for _, bad := range []int{-1, crypto.PositionCandidates} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PositionID(%d) did not panic", bad)
				}
			}()
			crypto.PositionID(a.Leaf, bad)
		}()
	}
}
