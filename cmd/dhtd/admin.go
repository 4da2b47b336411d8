package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
)

// maxRingWalk bounds the nodes /ring visits; ringWalkTimeout bounds the walk.
const (
	maxRingWalk     = 4096
	ringWalkTimeout = 30 * time.Second
	// ringCacheTTL is how long one walk's answer serves /ring.
	ringCacheTTL = time.Second
	// probeCacheTTL is how long a successful store probe vouches for the
	// store, so that a /readyz poller does not cost a commit per request.
	probeCacheTTL = time.Second
	// maxAdminHeaderBytes bounds a request's headers.
	maxAdminHeaderBytes = 16 << 10
)

// newAdminServer returns the admin HTTP server with the timeouts of
// [admin]. Its write deadline is set per request by the handler (see
// withWriteDeadline), not by WriteTimeout, so that /backup and the profiler
// can move it.
func (d *daemon) newAdminServer() *http.Server {
	a := d.cfg.Admin
	return &http.Server{
		Handler:           d.adminHandler(),
		ReadHeaderTimeout: a.ReadTimeout.Duration,
		ReadTimeout:       a.ReadTimeout.Duration,
		IdleTimeout:       a.IdleTimeout.Duration,
		MaxHeaderBytes:    maxAdminHeaderBytes,
		ErrorLog:          d.log.StandardLogger(nil),
	}
}

// adminHandler serves the admin HTTP endpoints: /metrics, /healthz and
// /readyz to anyone; /status, /ring, /backup, the ring page /ui and, with
// admin.pprof, the Go profiler under /debug/pprof/ only with the token when
// the node has one (admin.token_file).
func (d *daemon) adminHandler() http.Handler {
	open := http.NewServeMux()
	open.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	open.HandleFunc("GET /readyz", d.serveReady)

	guarded := http.NewServeMux()
	guarded.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.status())
	})
	guarded.HandleFunc("GET /ring", d.serveRing)
	guarded.HandleFunc("GET /backup", d.serveBackup)
	guarded.HandleFunc("GET /ui", serveUI)
	guarded.HandleFunc("GET /ui/", serveUI)
	if d.cfg.Admin.PProf {
		guarded.HandleFunc("/debug/pprof/", pprof.Index)
		guarded.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		guarded.HandleFunc("/debug/pprof/profile", pprof.Profile)
		guarded.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		guarded.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	open.Handle("/", requireToken(d.token, guarded))
	return withWriteDeadline(d.cfg.Admin.WriteTimeout.Duration, open)
}

// requireToken passes a request on only if it carries the token: as
// "Authorization: Bearer TOKEN", or, from a browser, in the uiCookie cookie.
// GET /ui?token=TOKEN sets that cookie (HttpOnly, SameSite=Strict, Secure
// over TLS; it lasts until the browser closes). A nil token lets every
// request through.
func requireToken(token *crypto.Token, next http.Handler) http.Handler {
	if token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			if c, err := r.Cookie(uiCookie); err == nil {
				got, ok = c.Value, true
			}
		}
		fromQuery := r.URL.Path == "/ui" && r.URL.Query().Has("token")
		if fromQuery {
			got, ok = r.URL.Query().Get("token"), true
		}
		if !ok || !token.Equal(got) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durachord admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin token required (Authorization: Bearer; dhtctl --admin-token-file; a browser opens /ui?token=TOKEN once)"})
			return
		}
		if fromQuery {
			http.SetCookie(w, &http.Cookie{
				Name: uiCookie, Value: got, Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
			})
		}
		next.ServeHTTP(w, r)
	})
}

// withWriteDeadline gives every response timeout to be written, counted
// from the start of its handler; a profile or trace of N seconds gets N
// seconds more. The deadline covers the handler's writes and the flush
// after it; /backup moves it forward as its reader makes progress.
func withWriteDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := timeout
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			if s, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64); err == nil && s > 0 && s < 3600 {
				d += time.Duration(s * float64(time.Second))
			}
		}
		// An error means the connection cannot take deadlines (not a
		// net.Conn); there is nothing better to do than serve it.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		next.ServeHTTP(w, r)
	})
}

func (d *daemon) serveReady(w http.ResponseWriter, r *http.Request) {
	reason := ""
	switch {
	case d.node == nil || !d.node.Ready():
		reason = "not joined, or the successor does not answer"
	default:
		if err := d.probeStore(r.Context()); err != nil {
			reason = err.Error()
		}
	}
	if reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

// storeProbe remembers when the store last passed a probe.
type storeProbe struct {
	mu     sync.Mutex // guards lastOK
	lastOK time.Time
}

// probeStore checks that the store answers a read and makes a durable
// commit within admin.probe_timeout (a success vouches for probeCacheTTL).
func (d *daemon) probeStore(ctx context.Context) error {
	p := &d.probe
	p.mu.Lock()
	fresh := !p.lastOK.IsZero() && time.Since(p.lastOK) < probeCacheTTL
	p.mu.Unlock()
	if fresh {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Admin.ProbeTimeout.Duration)
	defer cancel()
	if err := d.db.Probe(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	p.mu.Lock()
	p.lastOK = time.Now()
	p.mu.Unlock()
	return nil
}

func (d *daemon) serveRing(w http.ResponseWriter, r *http.Request) {
	ring, err := d.ring.get(r.Context())
	if err != nil && len(ring) == 0 {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, ring)
}

// ringCache runs one ring walk at a time and lets its answer serve every
// /ring request for ttl: concurrent requests wait for the walk in flight
// instead of starting their own.
type ringCache struct {
	walk func(ctx context.Context) ([]chord.Status, error)
	ttl  time.Duration

	mu      sync.Mutex // guards the fields below
	at      time.Time  // when ring and err were got; zero if never
	ring    []chord.Status
	err     error
	running chan struct{} // closed when the walk in flight ends; nil if none
}

func newRingCache(node *chord.Node) *ringCache {
	return &ringCache{
		walk: func(ctx context.Context) ([]chord.Status, error) { return node.Walk(ctx, maxRingWalk) },
		ttl:  ringCacheTTL,
	}
}

// get returns the cached walk if it is fresh, else waits for the walk in
// flight or runs one under ctx (and ringWalkTimeout). A walk cut short by
// its caller's ctx is not cached: a waiter then runs its own.
func (c *ringCache) get(ctx context.Context) ([]chord.Status, error) {
	for {
		c.mu.Lock()
		if c.running == nil && !c.at.IsZero() && time.Since(c.at) < c.ttl {
			ring, err := c.ring, c.err
			c.mu.Unlock()
			return ring, err
		}
		if running := c.running; running != nil {
			c.mu.Unlock()
			select {
			case <-running:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.running = done
		c.mu.Unlock()

		wctx, cancel := context.WithTimeout(ctx, ringWalkTimeout)
		ring, err := c.walk(wctx)
		cancel()
		c.mu.Lock()
		if ctx.Err() == nil {
			c.at, c.ring, c.err = time.Now(), ring, err
		}
		c.running = nil
		close(done)
		c.mu.Unlock()
		return ring, err
	}
}

// serveBackup streams a copy of the database. The store copies it to a
// snapshot file first, so a slow reader holds no transaction; the write
// deadline moves forward with every chunk the reader takes, so a stalled
// one is disconnected after admin.write_timeout without a limit on the
// whole copy. At most admin.max_backups run at once.
func (d *daemon) serveBackup(w http.ResponseWriter, _ *http.Request) {
	select {
	case d.backups <- struct{}{}:
		defer func() { <-d.backups }()
	default:
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": fmt.Sprintf("%d backups in progress (admin.max_backups); try again later", cap(d.backups)),
		})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="records.db"`)
	size := func(n int64) { w.Header().Set("Content-Length", strconv.FormatInt(n, 10)) }
	out := &progressWriter{w: w, rc: http.NewResponseController(w), timeout: d.cfg.Admin.WriteTimeout.Duration}
	if _, err := d.db.Backup(out, size); err != nil {
		d.log.Warn("backup stream failed", "error", err)
	}
}

// progressWriter sets the write deadline timeout ahead before each write.
type progressWriter struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.rc.SetWriteDeadline(time.Now().Add(p.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	return p.w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
