package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// withFiles returns Default with a p2p address and tls_dir and hmac_keys
// pointing at files made in a temporary directory, so that it validates.
func withFiles(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range TLSFiles() {
		writeFile(t, filepath.Join(tlsDir, name), "x")
	}
	cfg := Default()
	cfg.P2PAddress = "127.0.0.1:7400"
	cfg.TLSDir = tlsDir
	cfg.HMACKeys = filepath.Join(dir, "hmac.keys")
	writeFile(t, cfg.HMACKeys, "a2V5\n")
	return cfg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultValidates(t *testing.T) {
	if err := withFiles(t).Validate(); err != nil {
		t.Fatalf("Validate(Default with files) = %v; want nil", err)
	}
	// Without a p2p address the defaults are incomplete, and say so.
	err := Default().Validate()
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "p2p_address: ") {
		t.Fatalf("Default().Validate() = %v; want a p2p_address error wrapping ErrInvalid", err)
	}
}

func TestKeysHaveSupportedTypes(t *testing.T) {
	cfg := Default()
	fields := cfg.fields()
	if got, want := len(fields), len(Keys()); got != want || want < 30 {
		t.Fatalf("len(fields()) = %d, len(Keys()) = %d; want equal and at least 30", got, want)
	}
	for key, f := range fields {
		switch f.Interface().(type) {
		case string, int, bool, Duration, []string:
		default:
			t.Errorf("key %s has type %s, which Load cannot decode", key, f.Type())
		}
	}
}

// modified returns a config in which every key differs from Default.
func modified(t *testing.T) Config {
	t.Helper()
	cfg := Default()
	for key, f := range cfg.fields() {
		switch v := f.Interface().(type) {
		case string:
			f.SetString(v + "/" + key)
		case int:
			f.SetInt(int64(v + 7))
		case bool:
			f.SetBool(!v)
		case Duration:
			f.Set(reflect.ValueOf(D(v.Duration + 1500*time.Millisecond)))
		case []string:
			f.Set(reflect.ValueOf([]string{"10.0.0.1:7400", "[::1]:7400"}))
		default:
			t.Fatalf("key %s: unhandled type %T", key, v)
		}
	}
	if changed := Default().Changed(cfg); !slices.Equal(changed, Keys()) {
		t.Fatalf("Changed(modified) = %v; want every key %v", changed, Keys())
	}
	return cfg
}

func TestRoundTripTOML(t *testing.T) {
	want := modified(t)
	path := filepath.Join(t.TempDir(), "config.toml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := toml.NewEncoder(f).Encode(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(encoded config) = %v", err)
	}
	if diff := want.Changed(got); len(diff) != 0 {
		t.Fatalf("Load(encoded config) differs in %v; got %+v; want %+v", diff, got, want)
	}
}

func TestRoundTripINI(t *testing.T) {
	want := modified(t)
	var b strings.Builder
	b.WriteString("hostkey = /etc/hostkey.pem\n[dht]\n")
	for key, f := range want.fields() {
		switch v := f.Interface().(type) {
		case []string:
			fmt.Fprintf(&b, "%s = %s\n", key, strings.Join(v, ", "))
		default:
			fmt.Fprintf(&b, "%s = %v\n", key, v)
		}
	}
	path := filepath.Join(t.TempDir(), "course.ini")
	writeFile(t, path, b.String())
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(INI) = %v", err)
	}
	if diff := want.Changed(got); len(diff) != 0 {
		t.Fatalf("Load(INI) differs in %v; got %+v; want %+v", diff, got, want)
	}
}

func TestLoadINICourseFile(t *testing.T) {
	const file = `; shared by all modules of the course setup
hostkey = /hostkey.pem
# another comment

[gossip] ; another module
cache_size = 50
degree = 30
bootstrapper = p2psec.net.in.tum.de:6001

[DHT]
P2P_Address = 127.0.0.1:6001
api_address = "127.0.0.1:7001"
bootstrap = 127.0.0.1:6002, 127.0.0.1:6003
bootstrap = 127.0.0.1:6004
tls_dir = /srv/dht/tls
ring.max_hops = 16
records.default_ttl = 30m

[nse]
whatever at all
`
	path := filepath.Join(t.TempDir(), "config.ini")
	writeFile(t, path, file)
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load(course INI) = %v", err)
	}
	want := Default()
	want.P2PAddress = "127.0.0.1:6001"
	want.APIAddress = "127.0.0.1:7001"
	want.Bootstrap = []string{"127.0.0.1:6002", "127.0.0.1:6003", "127.0.0.1:6004"}
	want.TLSDir = "/srv/dht/tls"
	want.Ring.MaxHops = 16
	want.Records.DefaultTTL = D(30 * time.Minute)
	if diff := want.Changed(got); len(diff) != 0 {
		t.Fatalf("Load(course INI) differs in %v; got %+v; want %+v", diff, got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string // config.toml or course.ini
		content string
		wantErr error
		want    string // the message after "FILE:"
	}{
		{"unknown key", "config.toml", "p2p_address = \"a:1\"\nstabilize_interval = \"1s\"\n",
			ErrUnknownKey, "stabilize_interval: unknown key"},
		{"unknown key in table", "config.toml", "[ring]\nmax_hops = 3\nstabilise_interval = \"1s\"\n",
			ErrUnknownKey, "ring.stabilise_interval: unknown key"},
		{"unknown table", "config.toml", "[cluster]\nname = \"x\"\n",
			ErrUnknownKey, "cluster: unknown key"},
		{"bad duration", "config.toml", "[api]\nidle_timeout = \"5 minutes\"\n",
			ErrBadDuration, `api.idle_timeout: bad duration "5 minutes"`},
		{"duration without unit", "config.toml", "[ring]\ncall_timeout = \"2\"\n",
			ErrBadDuration, `ring.call_timeout: bad duration "2"`},
		{"duration as number", "config.toml", "shutdown_timeout = 30\n",
			ErrBadDuration, "shutdown_timeout: want a duration string like \"1h30m\", have integer 30"},
		{"integer as string", "config.toml", "[api]\nmax_conns = \"many\"\n",
			ErrInvalid, `api.max_conns: want an integer, have string "many"`},
		{"float for integer", "config.toml", "[rpc]\nmax_handlers = 1.5\n",
			ErrInvalid, "rpc.max_handlers: want an integer, have float 1.5"},
		{"string for list", "config.toml", "bootstrap = \"10.0.0.1:7400\"\n",
			ErrInvalid, `bootstrap: want a list of strings, have string "10.0.0.1:7400"`},
		{"number in list", "config.toml", "bootstrap = [\"a:1\", 2]\n",
			ErrInvalid, "bootstrap[1]: want a string, have integer 2"},
		{"value for table", "config.toml", "api = 3\n",
			ErrInvalid, "api: want a table [api], have integer 3"},
		{"toml syntax", "config.toml", "p2p_address = 127.0.0.1:7400\n",
			ErrSyntax, "config.toml:1: p2p_address: syntax error: "},
		{"toml syntax without key", "config.toml", "[api\n",
			ErrSyntax, "config.toml:2: syntax error: expected"},
		{"ini unknown key", "course.ini", "[dht]\np2p_address = a:1\nhostkey = /k.pem\n",
			ErrUnknownKey, "course.ini:3: hostkey: unknown key in [dht]"},
		{"ini bad duration", "course.ini", "[dht]\nring.call_timeout = 2 s\n",
			ErrBadDuration, `course.ini:2: ring.call_timeout: bad duration "2 s"`},
		{"ini bad integer", "course.ini", "[dht]\napi.max_conns = lots\n",
			ErrInvalid, `course.ini:2: api.max_conns: want an integer, have "lots"`},
		{"ini key twice", "course.ini", "[dht]\napi_address = a:1\napi_address = a:2\n",
			ErrSyntax, "course.ini:3: api_address: set twice"},
		{"ini two dht sections", "course.ini", "[dht]\n[gossip]\n[dht]\n",
			ErrSyntax, "course.ini:3: [dht]: duplicate section"},
		{"ini line without =", "course.ini", "[dht]\np2p_address\n",
			ErrSyntax, "course.ini:2: p2p_address: want KEY = VALUE"},
		{"ini unclosed section", "course.ini", "[dht\n",
			ErrSyntax, "course.ini:1: [dht: want a section header [NAME]"},
		{"ini text after section", "course.ini", "[dht] x\n",
			ErrSyntax, "course.ini:1: [dht] x: want a section header [NAME]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			writeFile(t, path, tt.content)
			_, err := Load(path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Load(%q) = %v; want an error wrapping %v", tt.content, err, tt.wantErr)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path) || !strings.Contains(msg, tt.want) {
				t.Errorf("Load(%q) = %q; want it to start with the path and contain %q", tt.content, msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("Load(%q) = %q; want one line", tt.content, msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	if _, err := Load(path); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(%s) = %v; want a not-exist error naming the path", path, err)
	}
}

func TestLoadKeepsDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, path, "p2p_address = \"10.1.2.3:7400\"\n[ring]\nmax_hops = 12\n")
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.P2PAddress = "10.1.2.3:7400"
	want.Ring.MaxHops = 12
	if diff := want.Changed(got); len(diff) != 0 {
		t.Fatalf("Load differs from defaults plus the file in %v", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(c *Config)
		wantErr error
		want    string // the whole message
	}{
		{"api max conns", func(c *Config) { c.API.MaxConns = 0 },
			ErrInvalid, "api.max_conns: must be at least 1, have 0"},
		{"api max in flight", func(c *Config) { c.API.MaxInFlight = -1 },
			ErrInvalid, "api.max_in_flight: must be at least 1, have -1"},
		{"zero duration", func(c *Config) { c.API.ReadTimeout = D(0) },
			ErrInvalid, "api.read_timeout: must be more than 0s, have 0s"},
		{"negative duration", func(c *Config) { c.Ring.StabilizeInterval = D(-time.Second) },
			ErrInvalid, "ring.stabilize_interval: must be more than 0s, have -1s"},
		{"no p2p address", func(c *Config) { c.P2PAddress = "" },
			ErrInvalid, "p2p_address: required, want HOST:PORT"},
		{"p2p without port", func(c *Config) { c.P2PAddress = "localhost" },
			ErrBadAddress, `p2p_address: "localhost" is not HOST:PORT`},
		{"p2p port too big", func(c *Config) { c.P2PAddress = "127.0.0.1:65536" },
			ErrBadAddress, `p2p_address: "127.0.0.1:65536": port "65536" is not a number in 0..65535`},
		{"p2p named port", func(c *Config) { c.P2PAddress = "127.0.0.1:http" },
			ErrBadAddress, `p2p_address: "127.0.0.1:http": port "http" is not a number in 0..65535`},
		{"bootstrap port 0", func(c *Config) { c.Bootstrap = []string{"127.0.0.1:0"} },
			ErrBadAddress, `bootstrap[0]: "127.0.0.1:0": port 0 is not dialable`},
		{"bootstrap no host", func(c *Config) { c.Bootstrap = []string{":7400"} },
			ErrBadAddress, `bootstrap[0]: ":7400": host required (other nodes dial it)`},
		{"p2p no host", func(c *Config) { c.P2PAddress = ":7400" },
			ErrBadAddress, `p2p_address: ":7400": host required (other nodes dial it)`},
		{"p2p unspecified host", func(c *Config) { c.P2PAddress = "0.0.0.0:7400" },
			ErrBadAddress, `p2p_address: "0.0.0.0:7400": host 0.0.0.0 is not dialable`},
		{"api bad address", func(c *Config) { c.APIAddress = "127.0.0.1" },
			ErrBadAddress, `api_address: "127.0.0.1" is not HOST:PORT`},
		{"admin bad port", func(c *Config) { c.AdminAddress = "127.0.0.1:-1" },
			ErrBadAddress, `admin_address: "127.0.0.1:-1": port "-1" is not a number in 0..65535`},
		{"bootstrap bad address", func(c *Config) { c.Bootstrap = []string{"10.0.0.1:7400", "10.0.0.2"} },
			ErrBadAddress, `bootstrap[1]: "10.0.0.2" is not HOST:PORT`},
		{"no data dir", func(c *Config) { c.DataDir = "" },
			ErrInvalid, "data_dir: required, must not be empty"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" },
			ErrInvalid, `log_level: want one of trace, debug, info, warn, error, have "verbose"`},
		{"log format", func(c *Config) { c.LogFormat = "xml" },
			ErrInvalid, `log_format: want text or json, have "xml"`},
		{"shutdown timeout", func(c *Config) { c.ShutdownTimeout = D(0) },
			ErrInvalid, "shutdown_timeout: must be more than 0s, have 0s"},
		{"successor list too long", func(c *Config) { c.Ring.SuccessorListLen = 65 },
			ErrInvalid, "ring.successor_list_len: must be at most 64, have 65"},
		{"lookup shorter than call", func(c *Config) { c.Ring.LookupTimeout = D(time.Second) },
			ErrInvalid, "ring.lookup_timeout: must be at least ring.call_timeout (2s), have 1s"},
		{"max hops", func(c *Config) { c.Ring.MaxHops = 0 },
			ErrInvalid, "ring.max_hops: must be at least 1, have 0"},
		{"negative cache", func(c *Config) { c.Ring.CacheSize = -1 },
			ErrInvalid, "ring.cache_size: must be at least 0, have -1"},
		{"default ttl over max", func(c *Config) { c.Records.DefaultTTL = D(13 * time.Hour) },
			ErrInvalid, "records.default_ttl: must be at most records.max_ttl (12h0m0s), have 13h0m0s"},
		{"ttl under a second", func(c *Config) { c.Records.DefaultTTL = D(500 * time.Millisecond) },
			ErrInvalid, "records.default_ttl: must be at least 1s, have 500ms"},
		{"replication over max", func(c *Config) { c.Records.DefaultReplication = 9 },
			ErrInvalid, "records.default_replication: must be at most 8, have 9"},
		{"replication beyond successors", func(c *Config) { c.Ring.SuccessorListLen = 4 },
			ErrInvalid, "records.max_replication: must be at most ring.successor_list_len+1 (5), have 8"},
		{"replication beyond wire", func(c *Config) { c.Ring.SuccessorListLen = 64; c.Records.MaxReplication = 300 },
			ErrInvalid, "records.max_replication: must be at most 255, have 300"},
		{"write quorum zero", func(c *Config) { c.Records.WriteQuorum = 0 },
			ErrInvalid, "records.write_quorum: must be at least 1, have 0"},
		{"write quorum over max replication", func(c *Config) { c.Records.MaxReplication = 3; c.Records.WriteQuorum = 4 },
			ErrInvalid, "records.write_quorum: must be at most 3, have 4"},
		{"repair rate", func(c *Config) { c.Records.RepairRate = 0 },
			ErrInvalid, "records.repair_rate: must be at least 1, have 0"},
		{"frame too small", func(c *Config) { c.RPC.MaxFrameBytes = 65536 },
			ErrInvalid, "rpc.max_frame_bytes: must be at least 131072, have 65536"},
		{"no tls dir", func(c *Config) { c.TLSDir = "" },
			ErrInvalid, "tls_dir: required, must not be empty"},
		{"no hmac keys", func(c *Config) { c.HMACKeys = "" },
			ErrInvalid, "hmac_keys: required, must not be empty"},
		{"admin off loopback without token", func(c *Config) { c.AdminAddress = "0.0.0.0:7410" },
			ErrInvalid, `admin.token_file: required when admin_address is not loopback, have admin_address "0.0.0.0:7410"`},
		{"admin on every interface without token", func(c *Config) { c.AdminAddress = ":7410" },
			ErrInvalid, `admin.token_file: required when admin_address is not loopback, have admin_address ":7410"`},
		{"admin on a name without token", func(c *Config) { c.AdminAddress = "node1:7410" },
			ErrInvalid, `admin.token_file: required when admin_address is not loopback, have admin_address "node1:7410"`},
		{"admin token file missing", func(c *Config) { c.Admin.TokenFile = "/nonexistent/admin.token" },
			ErrMissingFile, "admin.token_file: /nonexistent/admin.token does not exist"},
		{"admin write timeout", func(c *Config) { c.Admin.WriteTimeout = D(0) },
			ErrInvalid, "admin.write_timeout: must be more than 0s, have 0s"},
		{"admin max backups", func(c *Config) { c.Admin.MaxBackups = 0 },
			ErrInvalid, "admin.max_backups: must be at least 1, have 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := withFiles(t)
			tt.modify(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v; want an error wrapping %v", err, tt.wantErr)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("Validate() = %T; want *KeyError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("Validate() = %q; want %q", err, tt.want)
			}
		})
	}
}

func TestValidateAcceptsListenForms(t *testing.T) {
	for _, addr := range []string{"", ":0", "127.0.0.1:0", "[::1]:7401", "localhost:7401", "0.0.0.0:7401"} {
		cfg := withFiles(t)
		cfg.APIAddress = addr
		cfg.AdminAddress = addr
		if cfg.AdminOffLoopback() {
			cfg.Admin.TokenFile = cfg.HMACKeys // any existing file: Validate does not read it
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(api_address=admin_address=%q) = %v; want nil", addr, err)
		}
	}
}

func TestAdminOffLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"", false},
		{"127.0.0.1:7410", false},
		{"127.0.0.66:0", false},
		{"[::1]:7410", false},
		{"localhost:7410", false},
		{"LocalHost:7410", false},
		{":7410", true},
		{"0.0.0.0:7410", true},
		{"[::]:7410", true},
		{"10.1.2.3:7410", true},
		{"node1:7410", true},
	} {
		cfg := Default()
		cfg.AdminAddress = tt.addr
		if got := cfg.AdminOffLoopback(); got != tt.want {
			t.Errorf("AdminOffLoopback(%q) = %v; want %v", tt.addr, got, tt.want)
		}
	}
}

func TestValidateAcceptsP2PPortZero(t *testing.T) {
	cfg := withFiles(t)
	cfg.P2PAddress = "127.0.0.7:0"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(p2p_address=%q) = %v; want nil", cfg.P2PAddress, err)
	}
}

func TestValidateFiles(t *testing.T) {
	for _, name := range TLSFiles() {
		t.Run(name, func(t *testing.T) {
			cfg := withFiles(t)
			path := filepath.Join(cfg.TLSDir, name)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if want := "tls_dir: " + path + " does not exist"; !errors.Is(err, ErrMissingFile) || err.Error() != want {
				t.Fatalf("Validate() = %v; want %q wrapping ErrMissingFile", err, want)
			}
		})
	}
	t.Run("tls dir missing", func(t *testing.T) {
		cfg := withFiles(t)
		cfg.TLSDir = filepath.Join(t.TempDir(), "nope")
		err := cfg.Validate()
		if !errors.Is(err, ErrMissingFile) || !strings.HasPrefix(err.Error(), "tls_dir: ") {
			t.Fatalf("Validate() = %v; want a tls_dir error wrapping ErrMissingFile", err)
		}
	})
	t.Run("hmac keys missing", func(t *testing.T) {
		cfg := withFiles(t)
		if err := os.Remove(cfg.HMACKeys); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		if want := "hmac_keys: " + cfg.HMACKeys + " does not exist"; !errors.Is(err, ErrMissingFile) || err.Error() != want {
			t.Fatalf("Validate() = %v; want %q wrapping ErrMissingFile", err, want)
		}
	})
	t.Run("hmac keys is a directory", func(t *testing.T) {
		cfg := withFiles(t)
		cfg.HMACKeys = t.TempDir()
		err := cfg.Validate()
		if want := "hmac_keys: " + cfg.HMACKeys + " is not a regular file"; !errors.Is(err, ErrMissingFile) || err.Error() != want {
			t.Fatalf("Validate() = %v; want %q wrapping ErrMissingFile", err, want)
		}
	})
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1h30m", 90 * time.Minute, false},
		{"500ms", 500 * time.Millisecond, false},
		{"0s", 0, false},
		{"-2s", -2 * time.Second, false},
		{"5", 0, true},
		{"", 0, true},
		{"1 hour", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrBadDuration) {
					t.Fatalf("UnmarshalText(%q) = %v; want ErrBadDuration", tt.in, err)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v, nil", tt.in, d, err, tt.want)
			}
			text, err := d.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != d {
				t.Fatalf("UnmarshalText(MarshalText(%v)) = %v, %v; want %v", d, back, err, d)
			}
		})
	}
}

func TestReload(t *testing.T) {
	running := withFiles(t)
	next := running.Clone()
	next.LogLevel = "debug"
	next.API.MaxConns = 10
	next.HMACKeys = "/elsewhere/hmac.keys"
	next.Ring.MaxHops = 7
	next.Bootstrap = []string{"10.0.0.9:7400"}

	applied, restart := running.Reload(next)
	if want := []string{"bootstrap", "ring.max_hops"}; !slices.Equal(restart, want) {
		t.Errorf("Reload restart = %v; want %v", restart, want)
	}
	want := running.Clone()
	want.LogLevel = "debug"
	want.API.MaxConns = 10
	want.HMACKeys = "/elsewhere/hmac.keys"
	if diff := want.Changed(applied); len(diff) != 0 {
		t.Errorf("Reload applied differs from the expected config in %v", diff)
	}
	for _, key := range ReloadableKeys() {
		if !slices.Contains(Keys(), key) {
			t.Errorf("ReloadableKeys has %q, which is not a key", key)
		}
	}
}

func TestChangedNilAndEmptyList(t *testing.T) {
	a, b := Default(), Default()
	a.Bootstrap, b.Bootstrap = nil, []string{}
	if diff := a.Changed(b); len(diff) != 0 {
		t.Fatalf("Changed(nil vs empty bootstrap) = %v; want none", diff)
	}
}

func TestCloneDoesNotShare(t *testing.T) {
	a := Default()
	a.Bootstrap = []string{"10.0.0.1:7400"}
	b := a.Clone()
	b.Bootstrap[0] = "10.0.0.2:7400"
	if a.Bootstrap[0] != "10.0.0.1:7400" {
		t.Fatalf("Clone shares Bootstrap: original became %v", a.Bootstrap)
	}
}
