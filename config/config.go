package config

import (
	"time"
)

// Config is the daemon's configuration. The zero value is not useful: start
// from Default, then Load a file over it, then set fields from flags, then call
// Validate. The TOML key of every field is given in its tag; nested structs are
// TOML tables ([api], [ring], [records], [rpc], [admin]).
type Config struct {
	// P2PAddress is HOST:PORT where the node listens for other nodes and the
	// address it announces to them, so HOST must be one they can dial. Port 0
	// picks a free port, and the node announces the port it got (for tests;
	// a node that changes port on restart is found again only through its
	// peers' successor lists). Required; no default.
	P2PAddress string `toml:"p2p_address"`
	// APIAddress is HOST:PORT of the client API (the DHT PUT/GET protocol,
	// docs/protocol.md). "" runs a node with no client API. Port 0 picks a free port. Default
	// "127.0.0.1:7401".
	APIAddress string `toml:"api_address"`
	// AdminAddress is HOST:PORT of the admin HTTP server (/metrics, /healthz,
	// /readyz, /status, /ring, /backup, and /debug/pprof/ with admin.pprof).
	// "" turns it off. Port 0 picks a free port. Off loopback (any host but
	// a loopback IP or "localhost") it needs admin.token_file. Default
	// "127.0.0.1:7410".
	AdminAddress string `toml:"admin_address"`
	// Bootstrap lists HOST:PORT peer addresses used to join a ring. Empty
	// starts a new ring (or rejoins through the peers remembered in DataDir).
	// Default empty.
	Bootstrap []string `toml:"bootstrap"`
	// DataDir holds the node's database and secrets. Created if missing.
	// Default "/var/lib/durachord".
	DataDir string `toml:"data_dir"`
	// TLSDir holds ca.crt, node.crt and node.key (as `dhtctl cert issue`
	// writes them). All three must exist. Default "/etc/durachord/tls".
	TLSDir string `toml:"tls_dir"`
	// HMACKeys is a file with one base64 cluster key per line; the first
	// signs, all verify. Must exist. Default "/etc/durachord/hmac.keys".
	HMACKeys string `toml:"hmac_keys"`
	// LogLevel is one of trace, debug, info, warn, error. Default "info".
	LogLevel string `toml:"log_level"`
	// LogFormat is "text" or "json" (one JSON object per line). Default "text".
	LogFormat string `toml:"log_format"`
	// ShutdownTimeout bounds the graceful leave on SIGTERM/SIGINT (hand
	// records to the successor, tell the neighbours). Default 30s; keep it
	// below the service manager's stop timeout.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	API     APIConfig     `toml:"api"`
	Ring    RingConfig    `toml:"ring"`
	Records RecordsConfig `toml:"records"`
	RPC     RPCConfig     `toml:"rpc"`
	Admin   AdminConfig   `toml:"admin"`
}

// APIConfig holds the limits of the client API server ([api]).
type APIConfig struct {
	// MaxConns is the most concurrent client connections. A new one beyond
	// it takes the place of the connection idle longest, or is closed at
	// once when every connection is busy. Default 1024.
	MaxConns int `toml:"max_conns"`
	// MaxConnsPerAddress is the most concurrent client connections from one
	// source address (IPv4 address, IPv6 /64), with the same rule among that
	// address's connections. Above MaxConns it is MaxConns. Default 256.
	MaxConnsPerAddress int `toml:"max_conns_per_address"`
	// FirstByteTimeout is how long a new connection may take to send its
	// first byte. Default 2s.
	FirstByteTimeout Duration `toml:"first_byte_timeout"`
	// MaxRequestBytes bounds the bytes of client requests read and not yet
	// carried out, over all connections; beyond it the node stops reading
	// (back-pressure, nothing is dropped). At least 65535. Default 67108864
	// (64 MiB).
	MaxRequestBytes int `toml:"max_request_bytes"`
	// MaxRequestBytesPerAddress is the same bound over the connections of
	// one source address. At least 65535. Default 16777216 (16 MiB).
	MaxRequestBytesPerAddress int `toml:"max_request_bytes_per_address"`
	// MaxInFlight is the most requests (GETs and PUTs) in progress per
	// connection; beyond it the server stops reading from that connection
	// (back-pressure). Default 64.
	MaxInFlight int `toml:"max_in_flight"`
	// ReadTimeout is how long a client may take to complete a message it
	// started. Default 10s.
	ReadTimeout Duration `toml:"read_timeout"`
	// IdleTimeout closes a connection with no request for this long.
	// Default 5m.
	IdleTimeout Duration `toml:"idle_timeout"`
	// RequestTimeout bounds one request: a GET (lookup and fetch) past it is
	// answered DHT FAILURE, a PUT past it is given up. Default 5s.
	RequestTimeout Duration `toml:"request_timeout"`
}

// RingConfig tunes the Chord overlay ([ring]).
type RingConfig struct {
	// SuccessorListLen is the number of successors each node tracks.
	// Default 8.
	SuccessorListLen int `toml:"successor_list_len"`
	// StabilizeInterval is the period of the stabilise round. Default 1s.
	StabilizeInterval Duration `toml:"stabilize_interval"`
	// FixFingersInterval is the period of the finger refresh round.
	// Default 1s.
	FixFingersInterval Duration `toml:"fix_fingers_interval"`
	// CheckPredecessorInterval is the period of the predecessor liveness
	// check. Default 2s.
	CheckPredecessorInterval Duration `toml:"check_predecessor_interval"`
	// CallTimeout bounds one RPC to another node. Default 2s.
	CallTimeout Duration `toml:"call_timeout"`
	// LookupTimeout bounds a whole lookup (all hops). Default 5s.
	LookupTimeout Duration `toml:"lookup_timeout"`
	// MaxHops bounds the hops of one lookup. Default 32.
	MaxHops int `toml:"max_hops"`
	// CacheSize is the number of nodes kept in the lookup cache; 0 turns the
	// cache off. Default 1024.
	CacheSize int `toml:"cache_size"`
	// VNodes is the number of ring positions each node stands at (virtual
	// nodes), the same across a cluster: position 0 is the node ID, the
	// others are chosen among the 255 more its certificate proves when the
	// node first stands at them, and kept in its data directory. It may be
	// raised on a running node (a restart adds positions); it may not be
	// lowered. At most 16. Default 4 (docs/vnodes.md).
	VNodes int `toml:"vnodes"`
}

// RecordsConfig sets record lifetimes, replication and maintenance
// ([records]).
type RecordsConfig struct {
	// DefaultTTL is the lifetime of a record PUT with TTL 0. Default 1h.
	DefaultTTL Duration `toml:"default_ttl"`
	// MaxTTL caps every TTL. The wire carries at most 65535 s (18h12m15s),
	// so a larger MaxTTL only matters for DefaultTTL. Default 12h.
	MaxTTL Duration `toml:"max_ttl"`
	// DefaultReplication is the replication of a record PUT with
	// replication 0. Default 3.
	DefaultReplication int `toml:"default_replication"`
	// MaxReplication caps every replication request (also cut to the ring
	// size). At most ring.successor_list_len+1 and 255. Default 8.
	MaxReplication int `toml:"max_replication"`
	// WriteQuorum is how many nodes, the owner included, must have a PUT on
	// disk before it is acknowledged (the owner and write_quorum-1 replica
	// holders; fewer when the record's replication or the ring is smaller).
	// 1 acknowledges on the owner's write alone. At most max_replication.
	// Default 2.
	WriteQuorum int `toml:"write_quorum"`
	// SweepInterval is the period of the expired-record sweep. Default 1m.
	SweepInterval Duration `toml:"sweep_interval"`
	// RepairInterval is the period of the maintenance round (placement and
	// anti-entropy); ring changes start rounds too. Default 1m.
	RepairInterval Duration `toml:"repair_interval"`
	// RepairRate bounds the records per second sent by repair and handoff.
	// Default 1000.
	RepairRate int `toml:"repair_rate"`
}

// RPCConfig tunes the node-to-node transport ([rpc]).
type RPCConfig struct {
	// MaxFrameBytes is the largest RPC frame accepted or sent, in bytes. At
	// least 131072 (a record of 65535 bytes with its envelope). Default
	// 4194304 (4 MiB).
	MaxFrameBytes int `toml:"max_frame_bytes"`
	// MaxHandlers bounds the record calls (dht.*) served at once, over all
	// connections; ring calls have slots of their own. Default 256.
	MaxHandlers int `toml:"max_handlers"`
	// IdleTimeout closes an outgoing pooled connection that carried no call
	// for this long. Default 2m.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConns is the most incoming peer connections open at once, those in
	// their handshake included. A new one beyond it takes the place of the
	// connection idle longest, or is closed when every one is busy.
	// Default 1024.
	MaxConns int `toml:"max_conns"`
	// MaxConnsPerAddress is the most incoming peer connections from one
	// source address, with the same rule among that address's connections.
	// Above MaxConns it is MaxConns. Default 128.
	MaxConnsPerAddress int `toml:"max_conns_per_address"`
	// FirstByteTimeout is how long an incoming connection may take to send
	// its first byte. Default 2s.
	FirstByteTimeout Duration `toml:"first_byte_timeout"`
	// HandshakeTimeout bounds the TLS handshake and hello of an incoming
	// connection, from its first byte. Default 5s.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxRequestBytes bounds the bytes of incoming request frames read and
	// not yet answered, for each of two classes (the calls that call other
	// nodes before they answer, and the rest); frames of at most 4 KiB are
	// not counted. Beyond it the node stops reading the connection. At least
	// MaxFrameBytes. Default 67108864 (64 MiB).
	MaxRequestBytes int `toml:"max_request_bytes"`
}

// AdminConfig secures and bounds the admin HTTP server ([admin]).
type AdminConfig struct {
	// TokenFile is a file (mode 0600, as `dhtctl token new --out` writes
	// it) holding the bearer token that every admin endpoint but /healthz,
	// /readyz and /metrics then requires. Required when admin_address is
	// not loopback; on loopback it is optional, and required as soon as
	// it is set. Default "" (no token).
	TokenFile string `toml:"token_file"`
	// PProf serves the Go profiler under /debug/pprof/ (behind the token
	// when there is one). Default false.
	PProf bool `toml:"pprof"`
	// ReadTimeout bounds reading one request, headers included.
	// Default 10s.
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds writing one response; /backup gets it afresh for
	// every 32 KiB its reader takes, and a profile for its duration on top.
	// A reader slower than that is disconnected. Default 30s.
	WriteTimeout Duration `toml:"write_timeout"`
	// IdleTimeout closes a kept-alive connection with no request for this
	// long. Default 2m.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxBackups is the most /backup streams served at once; more are
	// answered 503. Each holds a copy of the database in data_dir while it
	// streams. Default 2.
	MaxBackups int `toml:"max_backups"`
	// ProbeTimeout bounds the store check of /readyz and of the systemd
	// watchdog ping: one read and one durable commit must finish within
	// it. Default 5s.
	ProbeTimeout Duration `toml:"probe_timeout"`
}

// Limits the wire and the design impose.
const (
	// MaxWireTTL is the largest TTL a client can send (u16 seconds).
	MaxWireTTL = 65535 * time.Second
	// MaxWireReplication is the largest replication a client can send (u8).
	MaxWireReplication = 255
	// MinFrameBytes is the smallest rpc.max_frame_bytes allowed.
	MinFrameBytes = 128 << 10
	// MinAPIRequestBytes is the smallest api.max_request_bytes allowed: the
	// largest client message.
	MinAPIRequestBytes = 65535
)

// Default returns the defaults. P2PAddress is empty: it is required and has no
// sensible default.
func Default() Config {
	return Config{
		APIAddress:      "127.0.0.1:7401",
		AdminAddress:    "127.0.0.1:7410",
		DataDir:         "/var/lib/durachord",
		TLSDir:          "/etc/durachord/tls",
		HMACKeys:        "/etc/durachord/hmac.keys",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: D(30 * time.Second),
		API: APIConfig{
			MaxConns:           1024,
			MaxConnsPerAddress: 256,
			FirstByteTimeout:   D(2 * time.Second),
			MaxRequestBytes:    64 << 20,
			MaxInFlight:        64,
			// A quarter of MaxRequestBytes.
			MaxRequestBytesPerAddress: 16 << 20,
			ReadTimeout:               D(10 * time.Second),
			IdleTimeout:               D(5 * time.Minute),
			RequestTimeout:            D(5 * time.Second),
		},
		Ring: RingConfig{
			SuccessorListLen:         8,
			StabilizeInterval:        D(time.Second),
			FixFingersInterval:       D(time.Second),
			CheckPredecessorInterval: D(2 * time.Second),
			CallTimeout:              D(2 * time.Second),
			LookupTimeout:            D(5 * time.Second),
			MaxHops:                  32,
			CacheSize:                1024,
			VNodes:                   4,
		},
		Records: RecordsConfig{
			DefaultTTL:         D(time.Hour),
			MaxTTL:             D(12 * time.Hour),
			DefaultReplication: 3,
			MaxReplication:     8,
			WriteQuorum:        2,
			SweepInterval:      D(time.Minute),
			RepairInterval:     D(time.Minute),
			RepairRate:         1000,
		},
		RPC: RPCConfig{
			MaxFrameBytes:      4 << 20,
			MaxHandlers:        256,
			IdleTimeout:        D(2 * time.Minute),
			MaxConns:           1024,
			MaxConnsPerAddress: 128,
			FirstByteTimeout:   D(2 * time.Second),
			HandshakeTimeout:   D(5 * time.Second),
			MaxRequestBytes:    64 << 20,
		},
		Admin: AdminConfig{
			ReadTimeout:  D(10 * time.Second),
			WriteTimeout: D(30 * time.Second),
			IdleTimeout:  D(2 * time.Minute),
			MaxBackups:   2,
			ProbeTimeout: D(5 * time.Second),
		},
	}
}

// Clone returns a copy of c that shares no memory with it.
func (c Config) Clone() Config {
	c.Bootstrap = append([]string(nil), c.Bootstrap...)
	return c
}
