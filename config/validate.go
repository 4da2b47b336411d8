package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TLSFiles returns the names of the files tls_dir must hold, in the order
// Validate checks them: ca.crt, node.crt, node.key.
func TLSFiles() []string { return []string{"ca.crt", "node.crt", "node.key"} }

// Validate checks c and returns the first problem as a *KeyError whose
// message names the key and the problem in one line, for example
// "api.max_conns: must be at least 1, have 0". It also checks that the files
// c names exist (tls_dir's three files, hmac_keys); it does not read them.
func (c Config) Validate() error {
	for _, check := range []func() error{
		func() error { return checkAddress("p2p_address", c.P2PAddress, addrP2P) },
		func() error { return checkAddress("api_address", c.APIAddress, addrListen) },
		func() error { return checkAddress("admin_address", c.AdminAddress, addrListen) },
		c.checkBootstrap,
		func() error { return nonEmpty("data_dir", c.DataDir) },
		c.checkLog,
		func() error { return positive("shutdown_timeout", c.ShutdownTimeout) },
		c.checkAPI,
		c.checkRing,
		c.checkRecords,
		c.checkRPC,
		c.checkAdmin,
		c.checkFiles,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// addrKind says what an address is used for.
type addrKind int

const (
	// addrListen: an optional listen address. "" is off, an empty host is
	// every interface, port 0 any free port.
	addrListen addrKind = iota
	// addrP2P: required; listened on and announced, so the host must be
	// dialable; port 0 picks a free port and the node announces the one it got.
	addrP2P
	// addrPeer: dialed; host required and port not 0.
	addrPeer
)

// checkAddress checks HOST:PORT with a numeric port, as kind requires.
func checkAddress(key, addr string, kind addrKind) error {
	if addr == "" {
		if kind != addrListen {
			return keyErr(key, ErrInvalid, "required, want HOST:PORT")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return keyErr(key, ErrBadAddress, fmt.Sprintf("%q is not HOST:PORT", addr))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return keyErr(key, ErrBadAddress, fmt.Sprintf("%q: port %q is not a number in 0..65535", addr, port))
	}
	if kind != addrListen {
		if host == "" {
			return keyErr(key, ErrBadAddress, fmt.Sprintf("%q: host required (other nodes dial it)", addr))
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return keyErr(key, ErrBadAddress, fmt.Sprintf("%q: host %s is not dialable", addr, host))
		}
		if n == 0 && kind == addrPeer {
			return keyErr(key, ErrBadAddress, fmt.Sprintf("%q: port 0 is not dialable", addr))
		}
	}
	if strings.ContainsAny(host, " \t/") {
		return keyErr(key, ErrBadAddress, fmt.Sprintf("%q: bad host %q", addr, host))
	}
	return nil
}

func (c Config) checkBootstrap() error {
	for i, addr := range c.Bootstrap {
		if err := checkAddress(fmt.Sprintf("bootstrap[%d]", i), addr, addrPeer); err != nil {
			return err
		}
	}
	return nil
}

// LogLevels returns the accepted values of log_level.
func LogLevels() []string { return []string{"trace", "debug", "info", "warn", "error"} }

func (c Config) checkLog() error {
	if logLevels := LogLevels(); !slices.Contains(logLevels, strings.ToLower(c.LogLevel)) {
		return keyErr("log_level", ErrInvalid, fmt.Sprintf("want one of %s, have %q", strings.Join(logLevels, ", "), c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return keyErr("log_format", ErrInvalid, fmt.Sprintf("want text or json, have %q", c.LogFormat))
	}
	return nil
}

func (c Config) checkAPI() error {
	a := c.API
	return first(
		atLeast("api.max_conns", a.MaxConns, 1),
		atLeast("api.max_conns_per_address", a.MaxConnsPerAddress, 1),
		positive("api.first_byte_timeout", a.FirstByteTimeout),
		atLeast("api.max_request_bytes", a.MaxRequestBytes, MinAPIRequestBytes),
		atLeast("api.max_request_bytes_per_address", a.MaxRequestBytesPerAddress, MinAPIRequestBytes),
		atLeast("api.max_in_flight", a.MaxInFlight, 1),
		positive("api.read_timeout", a.ReadTimeout),
		positive("api.idle_timeout", a.IdleTimeout),
		positive("api.request_timeout", a.RequestTimeout),
	)
}

func (c Config) checkRing() error {
	r := c.Ring
	if err := first(
		atLeast("ring.successor_list_len", r.SuccessorListLen, 1),
		atMost("ring.successor_list_len", r.SuccessorListLen, 64),
		positive("ring.stabilize_interval", r.StabilizeInterval),
		positive("ring.fix_fingers_interval", r.FixFingersInterval),
		positive("ring.check_predecessor_interval", r.CheckPredecessorInterval),
		positive("ring.call_timeout", r.CallTimeout),
		positive("ring.lookup_timeout", r.LookupTimeout),
		atLeast("ring.max_hops", r.MaxHops, 1),
		atLeast("ring.cache_size", r.CacheSize, 0),
		atLeast("ring.vnodes", r.VNodes, 1),
		atMost("ring.vnodes", r.VNodes, 16),
	); err != nil {
		return err
	}
	if r.LookupTimeout.Duration < r.CallTimeout.Duration {
		return keyErr("ring.lookup_timeout", ErrInvalid, fmt.Sprintf("must be at least ring.call_timeout (%v), have %v", r.CallTimeout, r.LookupTimeout))
	}
	return nil
}

func (c Config) checkRecords() error {
	r := c.Records
	if err := first(
		atLeastDuration("records.max_ttl", r.MaxTTL, time.Second),
		atLeastDuration("records.default_ttl", r.DefaultTTL, time.Second),
		atLeast("records.max_replication", r.MaxReplication, 1),
		atMost("records.max_replication", r.MaxReplication, MaxWireReplication),
		atLeast("records.default_replication", r.DefaultReplication, 1),
		atMost("records.default_replication", r.DefaultReplication, r.MaxReplication),
		atLeast("records.write_quorum", r.WriteQuorum, 1),
		atMost("records.write_quorum", r.WriteQuorum, r.MaxReplication),
		positive("records.sweep_interval", r.SweepInterval),
		positive("records.repair_interval", r.RepairInterval),
		atLeast("records.repair_rate", r.RepairRate, 1),
	); err != nil {
		return err
	}
	if r.MaxReplication > c.Ring.SuccessorListLen+1 {
		return keyErr("records.max_replication", ErrInvalid, fmt.Sprintf("must be at most ring.successor_list_len+1 (%d), have %d", c.Ring.SuccessorListLen+1, r.MaxReplication))
	}
	if r.DefaultTTL.Duration > r.MaxTTL.Duration {
		return keyErr("records.default_ttl", ErrInvalid, fmt.Sprintf("must be at most records.max_ttl (%v), have %v", r.MaxTTL, r.DefaultTTL))
	}
	return nil
}

func (c Config) checkRPC() error {
	r := c.RPC
	return first(
		atLeast("rpc.max_frame_bytes", r.MaxFrameBytes, MinFrameBytes),
		atLeast("rpc.max_handlers", r.MaxHandlers, 1),
		positive("rpc.idle_timeout", r.IdleTimeout),
		atLeast("rpc.max_conns", r.MaxConns, 1),
		atLeast("rpc.max_conns_per_address", r.MaxConnsPerAddress, 1),
		positive("rpc.first_byte_timeout", r.FirstByteTimeout),
		positive("rpc.handshake_timeout", r.HandshakeTimeout),
		atLeast("rpc.max_request_bytes", r.MaxRequestBytes, r.MaxFrameBytes),
	)
}

func (c Config) checkFiles() error {
	if err := nonEmpty("tls_dir", c.TLSDir); err != nil {
		return err
	}
	for _, name := range TLSFiles() {
		if err := regularFile("tls_dir", filepath.Join(c.TLSDir, name)); err != nil {
			return err
		}
	}
	if err := nonEmpty("hmac_keys", c.HMACKeys); err != nil {
		return err
	}
	return regularFile("hmac_keys", c.HMACKeys)
}

func regularFile(key, path string) error {
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return keyErr(key, ErrMissingFile, fmt.Sprintf("%s does not exist", path))
	case err != nil:
		return keyErr(key, ErrMissingFile, fmt.Sprintf("%s: %v", path, unwrapPath(err)))
	case !fi.Mode().IsRegular():
		return keyErr(key, ErrMissingFile, fmt.Sprintf("%s is not a regular file", path))
	}
	return nil
}

// unwrapPath drops the *PathError wrapping so the path is not said twice.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func nonEmpty(key, v string) error {
	if v == "" {
		return keyErr(key, ErrInvalid, "required, must not be empty")
	}
	return nil
}

func atLeast(key string, have, min int) error {
	if have < min {
		return keyErr(key, ErrInvalid, fmt.Sprintf("must be at least %d, have %d", min, have))
	}
	return nil
}

func atMost(key string, have, max int) error {
	if have > max {
		return keyErr(key, ErrInvalid, fmt.Sprintf("must be at most %d, have %d", max, have))
	}
	return nil
}

func positive(key string, have Duration) error {
	if have.Duration <= 0 {
		return keyErr(key, ErrInvalid, fmt.Sprintf("must be more than 0s, have %v", have))
	}
	return nil
}

func atLeastDuration(key string, have Duration, min time.Duration) error {
	if have.Duration < min {
		return keyErr(key, ErrInvalid, fmt.Sprintf("must be at least %v, have %v", min, have))
	}
	return nil
}

// first returns the first non-nil error. Its arguments are all evaluated,
// which is cheap here.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// AdminOffLoopback reports whether the admin address listens beyond
// loopback: any host but a loopback IP or "localhost" (an empty host and
// 0.0.0.0 are every interface; a name may resolve anywhere).
func (c Config) AdminOffLoopback() bool {
	host, _, err := net.SplitHostPort(c.AdminAddress)
	if c.AdminAddress == "" || err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

func (c Config) checkAdmin() error {
	a := c.Admin
	if err := first(
		positive("admin.read_timeout", a.ReadTimeout),
		positive("admin.write_timeout", a.WriteTimeout),
		positive("admin.idle_timeout", a.IdleTimeout),
		atLeast("admin.max_backups", a.MaxBackups, 1),
		positive("admin.probe_timeout", a.ProbeTimeout),
	); err != nil {
		return err
	}
	if a.TokenFile == "" {
		if c.AdminOffLoopback() {
			return keyErr("admin.token_file", ErrInvalid, fmt.Sprintf("required when admin_address is not loopback, have admin_address %q", c.AdminAddress))
		}
		return nil
	}
	return regularFile("admin.token_file", a.TokenFile)
}
