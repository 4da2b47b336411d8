package main

import (
	"bytes"
	"context"
	"errors"
	"github.com/durachord/durachord/internal/buildinfo"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// files makes a TLS folder and an HMAC keys file that pass validation.
func files(t *testing.T) (tlsDir, keys string) {
	t.Helper()
	ca := cryptotest.NewCA(t)
	tlsDir, _ = cryptotest.WriteTLSDir(t, ca, "127.0.0.1:7400")
	return tlsDir, cryptotest.WriteKeysFile(t, 1)
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	tlsDir, keys := files(t)
	good := []string{"--tls-dir", tlsDir, "--hmac-keys", keys, "--data-dir", t.TempDir()}
	for _, tc := range []struct {
		name string
		args []string
		want string // must appear in the one line
	}{
		{"no p2p address", good, "p2p_address"},
		{"bad p2p address", append([]string{"--p2p-address", "nohost"}, good...), "p2p_address"},
		{"bad log level", append([]string{"--p2p-address", "127.0.0.1:0", "--log-level", "loud"}, good...), "log_level"},
		{"missing tls dir", []string{"--p2p-address", "127.0.0.1:0", "--tls-dir", filepath.Join(t.TempDir(), "none"), "--hmac-keys", keys}, "tls_dir"},
		{"missing keys file", []string{"--p2p-address", "127.0.0.1:0", "--tls-dir", tlsDir, "--hmac-keys", filepath.Join(t.TempDir(), "none")}, "hmac_keys"},
		{"unknown flag", []string{"--p2p-adress", "127.0.0.1:0"}, "p2p-adress"},
		{"stray argument", append([]string{"--p2p-address", "127.0.0.1:0", "extra"}, good...), "extra"},
		{"unknown key in file", append([]string{"--config", writeConfig(t, "p2p_address = \"127.0.0.1:0\"\nbogus_key = 1\n")}, good...), "bogus_key"},
		{"bad duration in file", append([]string{"--config", writeConfig(t, "p2p_address = \"127.0.0.1:0\"\n[ring]\ncall_timeout = \"soon\"\n")}, good...), "ring.call_timeout"},
		{"missing config file", []string{"--config", filepath.Join(t.TempDir(), "none.toml")}, "none.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(append([]string{"dhtd"}, tc.args...), &stderr)
			out := stderr.String()
			if code == 0 {
				t.Fatalf("dhtd %v exited 0; want non-zero", tc.args)
			}
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("dhtd %v printed %q; want one line naming %q", tc.args, out, tc.want)
			}
		})
	}
}

func TestFlagsWinOverFile(t *testing.T) {
	tlsDir, keys := files(t)
	path := writeConfig(t, `p2p_address = "127.0.0.1:7000"
api_address = "127.0.0.1:7001"
bootstrap = ["127.0.0.1:9000"]
log_level = "debug"
`)
	args := []string{"dhtd", "--config", path, "--api-address", "", "--dht-address", "127.0.0.1:7100",
		"--bootstrap-node", "127.0.0.1:9100", "--bootstrap-node", "127.0.0.1:9200",
		"--tls-dir", tlsDir, "--hmac-keys", keys, "--data-dir", t.TempDir(),
		"--admin-address", "0.0.0.0:7410", "--admin-token-file", keys} // any existing file: not read here
	var cfg config.Config
	capture := func(_ context.Context, c config.Config, _ func() (config.Config, error), _ io.Writer) error {
		cfg = c
		return nil
	}
	var stderr bytes.Buffer
	if err := newApp(&stderr, capture).Run(args); err != nil {
		t.Fatalf("dhtd %v = %v (%s)", args, err, stderr.String())
	}
	if cfg.P2PAddress != "127.0.0.1:7100" {
		t.Errorf("p2p_address = %q; want the flag's (through its alias --dht-address)", cfg.P2PAddress)
	}
	if cfg.APIAddress != "" {
		t.Errorf("api_address = %q; want the flag's empty value (no client API)", cfg.APIAddress)
	}
	if got := strings.Join(cfg.Bootstrap, ","); got != "127.0.0.1:9100,127.0.0.1:9200" {
		t.Errorf("bootstrap = %q; want the repeated flags (alias --bootstrap-node) in order", got)
	}
	if cfg.LogLevel != "debug" {
		t.Errorf("log_level = %q; want the file's value where no flag is given", cfg.LogLevel)
	}
	if cfg.Admin.TokenFile != keys || cfg.AdminAddress != "0.0.0.0:7410" {
		t.Errorf("admin.token_file = %q, admin_address %q; want the flags' %q, 0.0.0.0:7410", cfg.Admin.TokenFile, cfg.AdminAddress, keys)
	}
}

func TestAnnounceAddr(t *testing.T) {
	for _, tc := range []struct{ configured, bound, want string }{
		{"127.0.0.1:7400", "127.0.0.1:7400", "127.0.0.1:7400"},
		{"127.0.0.1:0", "127.0.0.1:40123", "127.0.0.1:40123"},
		{"node1.example:0", "10.0.0.5:40123", "node1.example:40123"},
	} {
		l := fakeListener{addr: tc.bound}
		if got := announceAddr(tc.configured, l); got != tc.want {
			t.Errorf("announceAddr(%q, bound %q) = %q; want %q", tc.configured, tc.bound, got, tc.want)
		}
	}
}

type fakeListener struct {
	net.Listener
	addr string
}

func (l fakeListener) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}

func TestLogEventsAreOneLineEach(t *testing.T) {
	var out bytes.Buffer
	log := newLogger(config.Config{LogLevel: "info", LogFormat: "text"}, &out)
	log.Warn("join failed; retrying", "error", errors.Join(errors.New("via a: refused"), errors.New("via b: not ready")))
	log.Info("node running", "id", "abc")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("two events printed %d lines:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], "via a: refused") || !strings.Contains(lines[0], "via b: not ready") {
		t.Fatalf("first event %q lost part of the joined error", lines[0])
	}
}

// TestVersion: dhtd --version prints its version and the commit of the
// build (where its help goes) and exits 0 without starting a node.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"dhtd", "--version"}, &out); code != 0 {
		t.Fatalf("--version: exit %d, output %q", code, out.String())
	}
	if want := "dhtd version " + buildinfo.Read().String(); strings.TrimSpace(out.String()) != want {
		t.Fatalf("--version printed %q; want %q", out.String(), want)
	}
}
