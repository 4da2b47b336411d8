package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/crypto/cryptotest"
	"github.com/durachord/durachord/rpc"
)

// TestReloadAppliesEveryReloadableKey: for every key SIGHUP reloads, a new
// value in the configuration is what the running node uses after the reload
// that SIGHUP runs:
// the API server's limits, the logger's level, the keys that verify peers'
// frames, the certificate presented to peers. The table is written out here,
// not derived from config.ReloadableKeys, so that a key dropped from that
// list fails its case; and it must cover that list exactly, so that a key
// added to it needs a case.
func TestReloadAppliesEveryReloadableKey(t *testing.T) {
	cases := []reloadCase{
		{
			key: "tls_dir",
			change: func(t *testing.T, d *testDaemon, cfg *config.Config) string {
				renewed, err := d.ca.Renew(cfg.TLSDir, "")
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLSDir = filepath.Join(t.TempDir(), "tls-renewed")
				if err := renewed.WriteDir(cfg.TLSDir, false); err != nil {
					t.Fatal(err)
				}
				return "certificate " + renewed.Cert.SerialNumber.Text(16)
			},
			probe: func(t *testing.T, d *testDaemon, _ config.Config) string {
				return "certificate " + d.presentedSerial(t)
			},
		},
		{
			key: "hmac_keys",
			change: func(t *testing.T, _ *testDaemon, cfg *config.Config) string {
				cfg.HMACKeys = cryptotest.WriteKeysFile(t, 1) // the old key is gone
				return "answered"
			},
			probe: func(t *testing.T, d *testDaemon, next config.Config) string {
				return d.pingSignedWith(t, next.HMACKeys)
			},
		},
		{
			key: "log_level",
			change: func(_ *testing.T, _ *testDaemon, cfg *config.Config) string {
				cfg.LogLevel = "debug"
				return "debug"
			},
			probe: func(_ *testing.T, d *testDaemon, _ config.Config) string {
				return d.log.GetLevel().String()
			},
		},
		apiLimit("api.max_conns", func(a *config.APIConfig) { a.MaxConns = 7 }, "7",
			func(l api.Config) any { return l.MaxConns }),
		apiLimit("api.max_conns_per_address", func(a *config.APIConfig) { a.MaxConnsPerAddress = 5 }, "5",
			func(l api.Config) any { return l.MaxConnsPerAddress }),
		apiLimit("api.first_byte_timeout", func(a *config.APIConfig) { a.FirstByteTimeout = config.D(700 * time.Millisecond) }, "700ms",
			func(l api.Config) any { return l.FirstByteTimeout }),
		apiLimit("api.max_in_flight", func(a *config.APIConfig) { a.MaxInFlight = 3 }, "3",
			func(l api.Config) any { return l.MaxInFlight }),
		apiLimit("api.read_timeout", func(a *config.APIConfig) { a.ReadTimeout = config.D(3 * time.Second) }, "3s",
			func(l api.Config) any { return l.ReadTimeout }),
		apiLimit("api.idle_timeout", func(a *config.APIConfig) { a.IdleTimeout = config.D(42 * time.Second) }, "42s",
			func(l api.Config) any { return l.IdleTimeout }),
		apiLimit("api.request_timeout", func(a *config.APIConfig) { a.RequestTimeout = config.D(1500 * time.Millisecond) }, "1.5s",
			func(l api.Config) any { return l.RequestTimeout }),
	}
	var keys []string
	for _, tc := range cases {
		keys = append(keys, tc.key)
	}
	if got, want := slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(config.ReloadableKeys())); !slices.Equal(got, want) {
		t.Errorf("cases for %v; ReloadableKeys() = %v: want one case per reloadable key", got, want)
	}

	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			d := startDaemon(t)
			next := d.cfg.Clone()
			want := tc.change(t, d, &next)
			if err := next.Validate(); err != nil {
				t.Fatalf("the changed configuration is invalid: %v", err)
			}
			if got := d.cfg.Changed(next); !slices.Equal(got, []string{tc.key}) {
				t.Fatalf("the change touches %v; want only %s", got, tc.key)
			}
			if got := tc.probe(t, d, next); got == want {
				t.Fatalf("before the reload the node already gives %q for %s: the probe cannot tell", got, tc.key)
			}

			d.reload(func() (config.Config, error) { return next, nil })

			if got := tc.probe(t, d, next); got != want {
				t.Errorf("after changing %s and reloading, the node gives %q; want %q", tc.key, got, want)
			}
			out := d.out.String()
			if !strings.Contains(out, "configuration reloaded") || strings.Contains(out, "reload refused") {
				t.Errorf("reload log:\n%s\nwant \"configuration reloaded\" and no refusal", out)
			}
			if strings.Contains(out, "change only on restart") {
				t.Errorf("after changing %s alone the node says a restart is needed:\n%s", tc.key, out)
			}
		})
	}
}

// reloadCase changes one reloadable key and observes its effect on the node.
type reloadCase struct {
	key string
	// change sets a new value of key in cfg, writing the files it names,
	// and returns what probe says once the node uses it.
	change func(t *testing.T, d *testDaemon, cfg *config.Config) (want string)
	// probe says what the running node does for key; next is the
	// configuration being loaded.
	probe func(t *testing.T, d *testDaemon, next config.Config) string
}

// apiLimit is the case of an API limit: set changes it to the value want
// names, get reads it from the limits the API server has in force.
func apiLimit(key string, set func(*config.APIConfig), want string, get func(api.Config) any) reloadCase {
	return reloadCase{
		key: key,
		change: func(_ *testing.T, _ *testDaemon, cfg *config.Config) string {
			set(&cfg.API)
			return want
		},
		probe: func(_ *testing.T, d *testDaemon, _ config.Config) string {
			return fmt.Sprint(get(d.api.Limits()))
		},
	}
}

// testDaemon is a node opened as serve opens it, with its servers running;
// it has not joined a ring.
type testDaemon struct {
	*daemon
	ca  *crypto.CA  // the cluster CA
	out *syncBuffer // the node's log
}

// startDaemon opens a node on 127.0.0.1 ports chosen by the system, with a
// TLS folder and keys file of its own, and starts its servers; the test's
// cleanup stops them and closes the node. mods change the configuration
// before it is validated.
func startDaemon(t *testing.T, mods ...func(*config.Config)) *testDaemon {
	t.Helper()
	ca := cryptotest.NewCA(t)
	cfg := config.Default()
	cfg.P2PAddress = "127.0.0.1:0"
	cfg.APIAddress = "127.0.0.1:0"
	cfg.AdminAddress = ""
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.TLSDir, _ = cryptotest.WriteTLSDir(t, ca, "127.0.0.1:0")
	cfg.HMACKeys = cryptotest.WriteKeysFile(t, 1)
	for _, mod := range mods {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	d := &daemon{cfg: cfg, log: newLogger(cfg, out)}
	if err := d.open(); err != nil {
		d.close()
		t.Fatalf("open = %v", err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	d.startServers(&wg, errc)
	t.Cleanup(func() {
		d.shutdownServers()
		wg.Wait()
		d.close()
		close(errc)
		for err := range errc {
			t.Errorf("server failed: %v", err)
		}
	})
	return &testDaemon{daemon: d, ca: ca, out: out}
}

// peer returns a TLS identity of another member of the cluster.
func (d *testDaemon) peer(t *testing.T) *crypto.Identity {
	t.Helper()
	return cryptotest.NewIdentity(t, d.ca, "127.0.0.1:0")
}

// presentedSerial completes a TLS handshake with the node's peer port as a
// member would, and returns the serial number of the certificate it presents.
func (d *testDaemon) presentedSerial(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	dialer := tls.Dialer{Config: d.peer(t).ClientConfig("127.0.0.1", d.id.ID)}
	conn, err := dialer.DialContext(ctx, "tcp", d.node.Self().Addr)
	if err != nil {
		t.Fatalf("TLS handshake with the node: %v", err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// pingSignedWith pings the node as a member whose frames are signed with the
// keys in keysFile, and says "answered", or how the call failed.
func (d *testDaemon) pingSignedWith(t *testing.T, keysFile string) string {
	t.Helper()
	keys, err := crypto.LoadKeyring(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := rpc.NewClient(rpc.DefaultClientConfig(), d.peer(t), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cli.Close(); err != nil {
			t.Errorf("Client.Close = %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = cli.Call(ctx, d.node.Self(), "chord.ping", nil, nil)
	switch {
	case err == nil:
		return "answered"
	case errors.Is(err, chord.ErrUnreachable):
		return "refused: " + err.Error()
	}
	t.Fatalf("ping = %v; want an answer or %v", err, chord.ErrUnreachable)
	return ""
}

// syncBuffer is a bytes.Buffer safe for the node's goroutines to write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
