package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/dht"
	"github.com/durachord/durachord/rpc"
	"github.com/durachord/durachord/store"
)

// daemon holds the running pieces of a node, in the order they start.
type daemon struct {
	cfg    config.Config
	log    hclog.Logger
	reg    *prometheus.Registry
	db     *store.Store
	id     *crypto.Identity
	keys   *crypto.Keyring
	client *rpc.Client
	server *rpc.Server
	node   *chord.Node // position 0
	svc    *dht.Service
	// The node's ring positions (positions.go): self is position 0's
	// address and ID, ncfg the ring config of every position, mux serves
	// the calls for each; nodes and positionIdx (on posMu) are the
	// positions stood at and their indexes, position 0 first, and stops
	// ends the loops of each position started while the node runs.
	self        chord.NodeInfo
	ncfg        chord.Config
	mux         *chord.Mux
	posMu       sync.Mutex
	nodes       []*chord.Node
	positionIdx []int
	stops       map[*chord.Node]context.CancelFunc
	moves       prometheus.Counter // positions moved by the repair step
	api         *api.Server
	admin       *http.Server

	p2pLn, apiLn, adminLn net.Listener

	// The admin server's state (admin.go).
	token   *crypto.Token // admin bearer token; nil if admin.token_file is ""
	ring    *ringCache
	backups chan struct{} // a slot per /backup in progress (admin.max_backups)
	probe   storeProbe
}

func newLogger(cfg config.Config, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "dhtd",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogFormat == "json",
		Output:     &oneLinePerEvent{w: w},
	})
}

// serve runs a node until a signal or ctx asks it to stop.
func serve(ctx context.Context, cfg config.Config, reload func() (config.Config, error), stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	d := &daemon{cfg: cfg, log: log}
	if err := d.open(); err != nil {
		d.close()
		return err
	}
	defer d.close()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	runCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	d.startServers(&wg, errc)

	// Join while watching for a signal, so that a node that cannot reach
	// its ring still stops when asked. The join reads a copy of the
	// bootstrap list: a SIGHUP reload replaces d.cfg meanwhile.
	joined := make(chan error, 1)
	joinCfg := d.cfg.Clone()
	wg.Go(func() { joined <- d.node.Start(runCtx, joinCfg.Bootstrap) })
	for waiting := true; waiting; {
		select {
		case err := <-joined:
			if err != nil {
				stopLoops()
				d.shutdownServers()
				wg.Wait()
				return err
			}
			waiting = false
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload(reload)
				continue
			}
			log.Info("stopping before the node joined", "signal", sig.String())
			stopLoops()
			<-joined
			d.shutdownServers()
			wg.Wait()
			return nil
		}
	}

	wg.Go(func() { _ = d.node.Run(runCtx) })
	wg.Go(func() { _ = d.svc.Run(runCtx) })
	// The further positions join through position 0 while the node runs:
	// a node that cannot bring one on stays up at those it has.
	wg.Go(func() {
		err := d.joinPositions(runCtx, func(n *chord.Node) {
			pctx, stop := context.WithCancel(runCtx)
			d.posMu.Lock()
			if d.stops == nil {
				d.stops = make(map[*chord.Node]context.CancelFunc)
			}
			d.stops[n] = stop
			d.posMu.Unlock()
			wg.Go(func() { _ = n.Run(pctx) })
		})
		if err != nil && runCtx.Err() == nil {
			log.Error("ring positions not all joined", "error", err)
		}
	})
	wg.Go(func() { d.notifyLoop(runCtx) })
	log.Info("node running", "id", d.node.Self().ID.String(), "p2p", d.node.Self().Addr,
		"api", addrOf(d.apiLn), "admin", addrOf(d.adminLn))

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload(reload)
				continue
			}
			log.Info("leaving the ring", "signal", sig.String(), "timeout", d.cfg.ShutdownTimeout.Duration)
			stopWatching := d.watchSecondSignal(sigs)
			defer stopWatching()
			d.leave()
			stopLoops()
			d.shutdownServers()
			wg.Wait()
			log.Info("stopped")
			return nil
		case err := <-errc:
			log.Error("server failed", "error", err)
			stopLoops()
			d.shutdownServers()
			wg.Wait()
			return err
		case <-ctx.Done():
			stopLoops()
			d.shutdownServers()
			wg.Wait()
			return nil
		}
	}
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// open opens the database, loads the identity and keys, listens, and builds
// the node. Nothing talks to the network yet.
func (d *daemon) open() error {
	cfg := d.cfg
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	scfg := store.DefaultConfig()
	scfg.Logger = d.log
	scfg.Metrics = d.reg
	db, err := store.Open(cfg.DataDir, scfg)
	if err != nil {
		return fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	d.db = db

	if d.id, err = crypto.LoadIdentity(cfg.TLSDir); err != nil {
		return fmt.Errorf("tls_dir: %w", err)
	}
	if d.keys, err = crypto.LoadKeyring(cfg.HMACKeys); err != nil {
		return fmt.Errorf("hmac_keys: %w", err)
	}

	if d.p2pLn, err = net.Listen("tcp", cfg.P2PAddress); err != nil {
		return fmt.Errorf("p2p_address: %w", err)
	}
	d.self = chord.NodeInfo{ID: d.id.ID, Addr: announceAddr(cfg.P2PAddress, d.p2pLn)}
	if d.positionIdx, err = d.recordedPositions(); err != nil {
		return err
	}
	if err := checkPositions(d.positionIdx, cfg.Ring.VNodes); err != nil {
		return err
	}

	ccfg := rpc.DefaultClientConfig()
	ccfg.CallTimeout = cfg.Ring.CallTimeout.Duration
	ccfg.MaxFrameSize = cfg.RPC.MaxFrameBytes
	ccfg.IdleTimeout = cfg.RPC.IdleTimeout.Duration
	ccfg.Logger = d.log
	ccfg.Metrics = d.reg
	if d.client, err = rpc.NewClient(ccfg, d.id, d.keys); err != nil {
		return fmt.Errorf("rpc client: %w", err)
	}

	ncfg := chord.DefaultConfig()
	ncfg.SuccessorListLen = cfg.Ring.SuccessorListLen
	ncfg.StabilizeInterval = cfg.Ring.StabilizeInterval.Duration
	ncfg.FixFingersInterval = cfg.Ring.FixFingersInterval.Duration
	ncfg.CheckPredecessorInterval = cfg.Ring.CheckPredecessorInterval.Duration
	ncfg.CallTimeout = cfg.Ring.CallTimeout.Duration
	ncfg.LookupTimeout = cfg.Ring.LookupTimeout.Duration
	ncfg.MaxHops = cfg.Ring.MaxHops
	ncfg.CacheSize = cfg.Ring.CacheSize
	ncfg.Logger = d.log
	ncfg.Metrics = d.reg
	d.ncfg = ncfg
	d.mux = chord.NewMux(d.self.ID)
	var ps []dht.Position
	for _, i := range d.positionIdx {
		n, err := d.newPosition(ncfg, i)
		if err != nil {
			return fmt.Errorf("ring: %w", err)
		}
		d.nodes = append(d.nodes, n)
		d.mux.Add(n.Self().ID, n)
		ps = append(ps, dht.Position{Node: n, Transport: d.transport(i)})
	}
	d.node = d.nodes[0]
	if len(d.nodes) > 1 {
		d.node.SetSeedRule(func() (bool, error) { return chord.LowestOfAll(d.positions()) })
	}
	d.reg.MustRegister(newStateCollector(d))
	d.moves = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "durachord_ring_position_moves_total",
		Help: "Ring positions this node moved to even out the ring (the repair step of virtual nodes).",
	})
	d.reg.MustRegister(d.moves)

	dcfg := dht.DefaultConfig()
	dcfg.DefaultTTL = cfg.Records.DefaultTTL.Duration
	dcfg.MaxTTL = cfg.Records.MaxTTL.Duration
	dcfg.DefaultReplication = cfg.Records.DefaultReplication
	dcfg.MaxReplication = cfg.Records.MaxReplication
	dcfg.WriteQuorum = cfg.Records.WriteQuorum
	dcfg.CallTimeout = cfg.Ring.CallTimeout.Duration
	dcfg.SweepInterval = cfg.Records.SweepInterval.Duration
	dcfg.MaintainInterval = cfg.Records.RepairInterval.Duration
	dcfg.RepairRate = cfg.Records.RepairRate
	dcfg.Logger = d.log
	dcfg.Metrics = d.reg
	if d.svc, err = dht.NewPositions(dcfg, ps, d.db); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	// A graceful leave hands the records over before the neighbours hear of it.
	d.node.BeforeLeave(d.svc.HandOff)

	scfgRPC := rpc.DefaultServerConfig()
	scfgRPC.MaxFrameSize = cfg.RPC.MaxFrameBytes
	scfgRPC.MaxHandlers = cfg.RPC.MaxHandlers
	scfgRPC.MaxConns = cfg.RPC.MaxConns
	scfgRPC.MaxConnsPerAddress = cfg.RPC.MaxConnsPerAddress
	scfgRPC.FirstByteTimeout = cfg.RPC.FirstByteTimeout.Duration
	scfgRPC.HandshakeTimeout = cfg.RPC.HandshakeTimeout.Duration
	scfgRPC.MaxRequestBytes = int64(cfg.RPC.MaxRequestBytes)
	scfgRPC.CallingMethods = dht.CallingMethods()
	scfgRPC.Logger = d.log
	scfgRPC.Metrics = d.reg
	if d.server, err = rpc.NewServer(scfgRPC, d.id, d.keys, d.mux); err != nil {
		return fmt.Errorf("rpc server: %w", err)
	}

	if cfg.APIAddress != "" {
		acfg := apiConfig(cfg)
		acfg.Logger = d.log
		acfg.Metrics = d.reg
		if d.api, err = api.NewServer(acfg, apiService{d.svc}); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		if d.apiLn, err = net.Listen("tcp", cfg.APIAddress); err != nil {
			return fmt.Errorf("api_address: %w", err)
		}
	}
	if cfg.AdminAddress != "" {
		if err := d.openAdmin(); err != nil {
			return err
		}
	}
	return nil
}

// openAdmin reads the admin token and listens on the admin address.
func (d *daemon) openAdmin() error {
	var err error
	if d.cfg.Admin.TokenFile != "" {
		if d.token, err = crypto.LoadToken(d.cfg.Admin.TokenFile); err != nil {
			return fmt.Errorf("admin.token_file: %w", err)
		}
	} else if d.cfg.AdminOffLoopback() { // Validate refuses this; kept as a last guard
		return fmt.Errorf("admin.token_file: required when admin_address (%s) is not loopback", d.cfg.AdminAddress)
	}
	if d.adminLn, err = net.Listen("tcp", d.cfg.AdminAddress); err != nil {
		return fmt.Errorf("admin_address: %w", err)
	}
	d.ring = newRingCache(d.node)
	d.backups = make(chan struct{}, d.cfg.Admin.MaxBackups)
	d.admin = d.newAdminServer()
	return nil
}

// announceAddr is the address peers dial: the configured one, with the port
// the listener got when the configured port was 0.
func announceAddr(configured string, l net.Listener) string {
	host, port, err := net.SplitHostPort(configured)
	if err != nil || port != "0" {
		return configured
	}
	_, got, _ := net.SplitHostPort(l.Addr().String())
	return net.JoinHostPort(host, got)
}

func apiConfig(cfg config.Config) api.Config {
	a := api.DefaultConfig()
	a.MaxConns = cfg.API.MaxConns
	a.MaxConnsPerAddress = cfg.API.MaxConnsPerAddress
	a.FirstByteTimeout = cfg.API.FirstByteTimeout.Duration
	a.MaxRequestBytes = int64(cfg.API.MaxRequestBytes)
	a.MaxRequestBytesPerAddress = int64(cfg.API.MaxRequestBytesPerAddress)
	a.MaxInFlight = cfg.API.MaxInFlight
	a.ReadTimeout = cfg.API.ReadTimeout.Duration
	a.IdleTimeout = cfg.API.IdleTimeout.Duration
	a.RequestTimeout = cfg.API.RequestTimeout.Duration
	return a
}

// report is what the node says of itself in its status: its records, the
// client requests it has answered and their rate, its admin address.
func (d *daemon) report() chord.Report {
	var r chord.Report
	if st, err := d.db.Stats(); err != nil {
		d.log.Warn("record counts unavailable", "error", err)
	} else {
		r.Records = chord.RecordCounts{Primary: st.PrimaryRecords, Replica: st.ReplicaRecords}
	}
	if d.api != nil {
		r.Requests, r.RequestRate = d.api.Requests(), d.api.RequestRate()
	}
	if d.adminLn != nil {
		r.Admin = d.adminLn.Addr().String()
	}
	if ps := d.positions(); len(ps) > 1 {
		for _, n := range ps {
			r.Positions = append(r.Positions, n.Self().ID)
		}
	}
	return r
}

func (d *daemon) startServers(wg *sync.WaitGroup, errc chan<- error) {
	wg.Go(func() {
		if err := d.server.Serve(d.p2pLn); err != nil && !errors.Is(err, rpc.ErrServerClosed) {
			errc <- fmt.Errorf("rpc: %w", err)
		}
	})
	if d.api != nil {
		wg.Go(func() {
			if err := d.api.Serve(d.apiLn); err != nil && !errors.Is(err, api.ErrServerClosed) {
				errc <- fmt.Errorf("api: %w", err)
			}
		})
	}
	if d.admin != nil {
		wg.Go(func() {
			if err := d.admin.Serve(d.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		})
	}
}

// watchSecondSignal makes a SIGINT or SIGTERM on sigs exit the process at
// once, until the returned function is called; that function returns when
// the watcher has ended.
func (d *daemon) watchSecondSignal(sigs <-chan os.Signal) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case sig := <-sigs:
				if sig != syscall.SIGHUP {
					d.log.Warn("second signal: exiting at once", "signal", sig.String())
					os.Exit(1)
				}
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// leave hands records over and tells the neighbours, bounded by the
// shutdown timeout.
func (d *daemon) leave() {
	notifyStopping()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout.Duration)
	defer cancel()
	if d.api != nil {
		// Stop taking requests, let the started ones finish.
		if err := d.api.Shutdown(ctx); err != nil {
			d.log.Warn("api shutdown incomplete", "error", err)
		}
	}
	if err := d.node.Leave(ctx); err != nil {
		d.log.Warn("leave incomplete", "error", err)
	}
	if err := d.leavePositions(ctx); err != nil {
		d.log.Warn("leave of further ring positions incomplete", "error", err)
	}
}

func (d *daemon) shutdownServers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d.api != nil {
		_ = d.api.Close()
	}
	if d.admin != nil {
		_ = d.admin.Shutdown(ctx)
	}
	if d.server != nil {
		_ = d.server.Shutdown(ctx)
	}
}

// close releases what open acquired; safe on a partly opened daemon.
func (d *daemon) close() {
	if d.client != nil {
		_ = d.client.Close()
	}
	for _, l := range []net.Listener{d.p2pLn, d.apiLn, d.adminLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	if d.db != nil {
		if err := d.db.Close(); err != nil {
			d.log.Error("closing the database", "error", err)
		}
	}
}

// reload applies what SIGHUP can change: the log level, the API limits, the
// HMAC keyring and the TLS files (a renewed node certificate of the same key,
// a CA bundle). Everything is read and checked before anything changes: a
// reload that fails leaves the node as it was. Keys that need a restart are
// named in a warning.
func (d *daemon) reload(load func() (config.Config, error)) {
	next, err := load()
	if err != nil {
		d.log.Error("reload refused: configuration invalid", "error", err)
		return
	}
	// The files are read where the applied configuration names them: a path
	// that changes only on restart keeps the running one.
	applied, restart := d.cfg.Reload(next)
	keys, err := crypto.LoadKeyring(applied.HMACKeys)
	if err != nil {
		d.log.Error("reload refused: hmac_keys", "error", err)
		return
	}
	ident, err := crypto.LoadIdentity(applied.TLSDir)
	if err != nil {
		d.log.Error("reload refused: tls_dir", "error", err)
		return
	}
	if ident.ID != d.id.ID {
		d.log.Error("reload refused: tls_dir", "error", d.id.Reload(ident))
		return
	}
	if d.api != nil {
		if err := d.api.SetLimits(apiConfig(applied)); err != nil {
			d.log.Error("reload refused: api limits", "error", err)
			return
		}
	}
	d.cfg = applied
	d.log.SetLevel(hclog.LevelFromString(applied.LogLevel))
	d.keys.Replace(keys)
	if err := d.id.Reload(ident); err != nil { // same ID: checked above
		d.log.Error("reload: tls_dir", "error", err)
	}
	if len(restart) > 0 {
		d.log.Warn("reload: these keys change only on restart", "keys", restart)
	}
	d.log.Info("configuration reloaded", "log-level", applied.LogLevel,
		"cert-serial", ident.Leaf.SerialNumber.Text(16), "cert-not-after", ident.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// apiService adapts the records layer to the client API.
type apiService struct{ svc *dht.Service }

func (a apiService) Put(ctx context.Context, p api.Put) error {
	return a.svc.Put(ctx, p.Key, p.Value, time.Duration(p.TTL)*time.Second, p.Replication)
}

func (a apiService) Get(ctx context.Context, key [32]byte) ([]byte, error) {
	v, err := a.svc.Get(ctx, key)
	if errors.Is(err, dht.ErrNotFound) {
		return nil, api.ErrNotFound
	}
	return v, err
}
