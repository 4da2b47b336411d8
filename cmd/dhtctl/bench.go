package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/durachord/durachord/api"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// benchOptions is what one bench run does.
type benchOptions struct {
	addrs       []string
	ops         int64         // total operations; ignored when duration > 0
	duration    time.Duration // run this long instead of ops
	concurrency int           // connections, one worker each
	valueSize   int
	getRatio    float64
	keys        int
	ttl         uint16
	replication uint8
	putConfirm  bool
	preload     bool          // put and confirm every key before the timed run
	getViaOther bool          // GETs through the next address, not the PUTs' one
	timeout     time.Duration // per operation
}

// latencyReport summarises the latencies of one operation type, in
// milliseconds.
type latencyReport struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// benchReport is what bench prints; --json prints it as one object.
type benchReport struct {
	Addrs       []string `json:"addrs"`
	Concurrency int      `json:"concurrency"`
	ValueSize   int      `json:"value_size"`
	Keys        int      `json:"keys"`
	PutConfirm  bool     `json:"put_confirm"`
	// GetViaOther: each connection's GETs went through the --api address
	// after the one that took its PUTs.
	GetViaOther bool `json:"get_via_other"`
	// Preloaded counts the keys put and confirmed by --preload before the
	// timed run; PreloadFailed those whose confirming GET answered FAILURE.
	Preloaded      int64         `json:"preloaded"`
	PreloadFailed  int64         `json:"preload_failed"`
	PreloadSeconds float64       `json:"preload_seconds"`
	Ops            int64         `json:"ops"`
	Seconds        float64       `json:"seconds"`
	OpsPerSec      float64       `json:"ops_per_sec"`
	Put            latencyReport `json:"put"`
	Get            latencyReport `json:"get"`
	// GetHits answered SUCCESS; GetMisses answered FAILURE for a key this
	// run had not put yet; FailedGets answered FAILURE for a key it had put
	// (written without error) earlier on the same connection: a lost or
	// unreadable write. Without --preload a GET-only run puts nothing, so
	// every FAILURE in it is a miss and FailedGets stays 0.
	GetHits    int64 `json:"get_hits"`
	GetMisses  int64 `json:"get_misses"`
	FailedGets int64 `json:"failed_gets"`
	// Errors counts operations that failed without an answer (connection
	// trouble, timeouts).
	Errors int64 `json:"errors"`
	// FirstError describes the first of them.
	FirstError string `json:"first_error,omitempty"`
}

// benchWorker is the state of one connection's worker.
type benchWorker struct {
	// put takes the worker's PUTs (and confirming GETs); get its GETs: the
	// same client unless --get-via-other.
	put, get                   *api.Client
	putLat, getLat             *latencyHistogram
	hits, misses, failed, errs int64
	preloaded, preloadFailed   int64
	firstErr                   error
	// wasPut[j] is set once the worker's j-th key has been put without
	// error on the worker's PUT connection and a GET of it must see it: on
	// that connection by read-your-writes, through another node once
	// --preload confirmed it.
	wasPut []bool
}

func (st *benchWorker) fail(err error) {
	st.errs++
	if st.firstErr == nil {
		st.firstErr = err
	}
}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-test nodes' client API (like redis-benchmark)",
		Description: `Runs a mix of DHT PUTs and GETs against one or more nodes and prints the
throughput, p50/p90/p99/p99.9 latencies for PUT and GET, and the count of
failed GETs: GETs of a key the bench had PUT earlier that came back FAILURE.

Each of --concurrency connections (spread over the --api addresses in turn)
runs one request at a time on its own share of the --keys key space
("bench-0", "bench-1", ... zero-padded to 32 bytes), so that read-your-writes
on a connection makes a failed GET a real loss. A GET of a key the run has
not put yet that answers FAILURE is a miss, not a failure; so a GET-only run
counts failures only with --preload, which first puts every key of the key
space once on its connection and confirms it with a GET (not timed, not in
the ops count). A short --ttl lets records expire and shows up as failed GETs.

PUT latency: the protocol has no reply to a PUT, so by default a PUT's latency
is the time to write it to the connection. With --put-confirm each PUT is
followed by a GET of the same key on the same connection and the latency is
that round trip; a confirming GET that answers FAILURE counts as failed.

--get-via-other sends each connection's GETs through the next --api address
after the one that takes its PUTs (and confirming GETs), so that no GET is
answered by the node that took the PUT. Read-your-writes then does not
apply, so a GET's FAILURE counts as failed only for keys --preload put and
confirmed; for keys put during the timed run it counts as a miss.

Latencies are kept in a histogram (HdrHistogram, 3 significant digits: a
percentile is within 0.1% of the measured latency).

A progress bar is drawn on stderr when it is a terminal (not with --json).`,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "api",
				Usage:   "client API `HOST:PORT[,HOST:PORT...]` of running nodes",
				Value:   defaultAPI,
				EnvVars: []string{"DURACHORD_API"},
			},
			&cli.Int64Flag{Name: "ops", Aliases: []string{"n"}, Value: 100000, Usage: "total operations"},
			&cli.DurationFlag{Name: "duration", Usage: "run for this long instead of --ops"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 50, Usage: "connections, each with one request at a time"},
			&cli.IntFlag{Name: "value-size", Aliases: []string{"d"}, Value: 100, Usage: "value size in bytes, 1..65495"},
			&cli.Float64Flag{Name: "get-ratio", Value: 0.5, Usage: "fraction of operations that are GETs, 0..1"},
			&cli.IntFlag{Name: "keys", Value: 10000, Usage: "size of the key space (at least --concurrency)"},
			ttlFlag(),
			replicationFlag(),
			&cli.BoolFlag{Name: "put-confirm", Usage: "time each PUT with a confirming GET on the same connection"},
			&cli.BoolFlag{Name: "preload", Usage: "before the timed run, put and confirm every key once, so that every GET is of a stored key"},
			&cli.BoolFlag{Name: "get-via-other", Usage: "send each connection's GETs through the next --api address, not the one that takes its PUTs (needs two addresses)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "deadline of one operation"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object, no progress bar"},
		},
		Subcommands:     []*cli.Command{benchBareServerCommand()},
		HideHelpCommand: true, // the one sub-command is a hidden benchmark fixture
		Action: func(cctx *cli.Context) error {
			if cctx.NArg() != 0 {
				return failf("bench: takes no arguments")
			}
			o, err := benchOptionsFrom(cctx)
			if err != nil {
				return failf("bench: %v", err)
			}
			stderr := cctx.App.ErrWriter
			showBar := !cctx.Bool("json") && isTerminal(stderr)
			rep, err := runBench(cctx.Context, o, stderr, showBar)
			if err != nil {
				return failf("bench: %v", err)
			}
			if cctx.Bool("json") {
				return writeJSON(cctx.App.Writer, rep)
			}
			printBench(cctx.App.Writer, rep)
			return nil
		},
	}
}

func benchOptionsFrom(cctx *cli.Context) (benchOptions, error) {
	o := benchOptions{
		ops:         cctx.Int64("ops"),
		duration:    cctx.Duration("duration"),
		concurrency: cctx.Int("concurrency"),
		valueSize:   cctx.Int("value-size"),
		getRatio:    cctx.Float64("get-ratio"),
		keys:        cctx.Int("keys"),
		putConfirm:  cctx.Bool("put-confirm"),
		preload:     cctx.Bool("preload"),
		getViaOther: cctx.Bool("get-via-other"),
		timeout:     cctx.Duration("timeout"),
	}
	for _, a := range strings.Split(cctx.String("api"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.addrs = append(o.addrs, a)
		}
	}
	var err error
	if o.ttl, err = ttlSeconds(cctx.Duration("ttl")); err != nil {
		return o, err
	}
	if o.replication, err = replicationValue(cctx); err != nil {
		return o, err
	}
	switch {
	case len(o.addrs) == 0:
		return o, errors.New("--api names no address")
	case o.getViaOther && len(o.addrs) < 2:
		return o, errors.New("--get-via-other needs at least two --api addresses")
	case o.duration < 0:
		return o, errors.New("--duration is negative")
	case o.duration == 0 && o.ops < 1:
		return o, errors.New("--ops must be at least 1")
	case o.concurrency < 1:
		return o, errors.New("--concurrency must be at least 1")
	case o.valueSize < 1 || o.valueSize > api.MaxValueSize:
		return o, fmt.Errorf("--value-size %d: want 1..%d", o.valueSize, api.MaxValueSize)
	case o.getRatio < 0 || o.getRatio > 1 || math.IsNaN(o.getRatio):
		return o, fmt.Errorf("--get-ratio %v: want 0..1", o.getRatio)
	case o.keys < o.concurrency:
		return o, fmt.Errorf("--keys %d is under --concurrency %d: each connection needs keys of its own", o.keys, o.concurrency)
	case o.timeout <= 0:
		return o, errors.New("--timeout must be positive")
	}
	return o, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func benchKey(i int) [api.KeySize]byte {
	var k [api.KeySize]byte
	copy(k[:], fmt.Sprintf("bench-%d", i))
	return k
}

// runBench connects, runs the workers and summarises what they measured.
func runBench(ctx context.Context, o benchOptions, stderr io.Writer, showBar bool) (benchReport, error) {
	workers := make([]benchWorker, o.concurrency)
	defer func() {
		for w := range workers {
			workers[w].close()
		}
	}()
	putLat, getLat := newLatencyHistogram(), newLatencyHistogram()
	for w := range workers {
		st := &workers[w]
		st.wasPut = make([]bool, workerKeys(o, w))
		st.putLat, st.getLat = putLat, getLat
		if err := st.dial(ctx, o, w); err != nil {
			return benchReport{}, err
		}
	}
	var preloadTime time.Duration
	if o.preload {
		start := time.Now()
		if err := preload(ctx, o, workers); err != nil {
			return benchReport{}, err
		}
		preloadTime = time.Since(start)
		if o.getViaOther {
			// The GET connections sat unused through the preload; a node
			// closes a connection that sends nothing for its first-byte
			// timeout (api.first_byte_timeout), so they start afresh.
			for w := range workers {
				workers[w].close()
				if err := workers[w].dial(ctx, o, w); err != nil {
					return benchReport{}, err
				}
			}
		}
	}

	runCtx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var issued, done atomic.Int64
	barMax := o.ops
	if o.duration > 0 {
		barMax = -1
	}
	stopBar := startBar(stderr, showBar, barMax, &done)

	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { runWorker(runCtx, o, w, &workers[w], &issued, &done) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()

	rep := benchReport{
		Addrs: o.addrs, Concurrency: o.concurrency, ValueSize: o.valueSize, Keys: o.keys,
		PutConfirm: o.putConfirm, GetViaOther: o.getViaOther, PreloadSeconds: preloadTime.Seconds(),
		Ops: done.Load(), Seconds: elapsed.Seconds(),
		Put: putLat.report(), Get: getLat.report(),
	}
	if elapsed > 0 {
		rep.OpsPerSec = float64(rep.Ops) / elapsed.Seconds()
	}
	for i := range workers {
		w := &workers[i]
		rep.GetHits += w.hits
		rep.GetMisses += w.misses
		rep.FailedGets += w.failed
		rep.Errors += w.errs
		rep.Preloaded += w.preloaded
		rep.PreloadFailed += w.preloadFailed
		if w.firstErr != nil && rep.FirstError == "" {
			rep.FirstError = w.firstErr.Error()
		}
	}
	return rep, nil
}

// dial connects worker w: its PUT connection to the w-th address (in turn),
// and with --get-via-other its GET connection to the next one.
func (st *benchWorker) dial(ctx context.Context, o benchOptions, w int) error {
	dial := func(addr string) (*api.Client, error) {
		dctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		return api.Dial(dctx, addr)
	}
	var err error
	if st.put, err = dial(o.addrs[w%len(o.addrs)]); err != nil {
		return err
	}
	st.get = st.put
	if o.getViaOther {
		st.get, err = dial(o.addrs[(w+1)%len(o.addrs)])
	}
	return err
}

// broken reports whether one of the worker's connections has failed.
func (st *benchWorker) broken() bool {
	return st.put == nil || st.get == nil || st.put.Err() != nil || st.get.Err() != nil
}

// close closes the worker's connections; it is idempotent.
func (st *benchWorker) close() {
	for _, c := range []*api.Client{st.put, st.get} {
		if c != nil {
			c.Close()
		}
	}
	st.put, st.get = nil, nil
}

// startBar draws the progress of done on stderr until the returned function
// is called; it draws nothing unless show.
func startBar(stderr io.Writer, show bool, max int64, done *atomic.Int64) (stop func()) {
	if !show {
		return func() {}
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("bench"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("ops"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = bar.Set64(done.Load()) // drawing errors do not matter
			case <-quit:
				return
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
		_ = bar.Finish()
	}
}

// workerKeys is the number of keys worker w owns: w, w+concurrency,
// w+2*concurrency, ... below o.keys.
func workerKeys(o benchOptions, w int) int {
	return (o.keys - w + o.concurrency - 1) / o.concurrency
}

// benchValue is a value of o.valueSize random lower-case letters.
func benchValue(o benchOptions, rng *rand.Rand) []byte {
	value := make([]byte, o.valueSize)
	for i := range value {
		value[i] = byte('a' + rng.IntN(26))
	}
	return value
}

// preload puts every key of each worker's share once on the worker's PUT
// connection and confirms it with a GET there (read-your-writes makes the
// GET wait for the PUT), all workers at once. A confirming GET that answers
// FAILURE is counted in preloadFailed; the key still counts as put, so the
// run's GETs of it count as failed too. Any other error ends the bench,
// whose figures would otherwise mean nothing.
func preload(ctx context.Context, o benchOptions, workers []benchWorker) error {
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			st := &workers[w]
			value := benchValue(o, rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano()))))
			for j := range st.wasPut {
				k := benchKey(w + j*o.concurrency)
				octx, cancel := context.WithTimeout(ctx, o.timeout)
				err := st.put.Put(octx, api.Put{TTL: o.ttl, Replication: o.replication, Key: k, Value: value})
				if err == nil {
					st.wasPut[j] = true
					_, err = st.put.Get(octx, k)
				}
				cancel()
				switch {
				case err == nil:
					st.preloaded++
				case errors.Is(err, api.ErrNotFound):
					st.preloadFailed++
				default:
					errs[w] = fmt.Errorf("preload %q: %w", strings.TrimRight(string(k[:]), "\x00"), err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runWorker runs operations on the worker's connections until the run's ops
// are issued or ctx ends; when a connection fails it dials new ones. Worker
// w owns the keys w, w+concurrency, w+2*concurrency, ...
func runWorker(ctx context.Context, o benchOptions, w int, st *benchWorker, issued, done *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	nkeys := len(st.wasPut)
	value := benchValue(o, rng)
	for ctx.Err() == nil {
		if o.duration == 0 && issued.Add(1) > o.ops {
			return
		}
		if st.errs > 0 && st.broken() {
			st.close()
			if err := st.dial(ctx, o, w); err != nil {
				st.fail(err)
				return
			}
		}
		j := rng.IntN(nkeys)
		k := benchKey(w + j*o.concurrency)
		octx, cancel := context.WithTimeout(ctx, o.timeout)
		start := time.Now()
		if rng.Float64() < o.getRatio {
			_, err := st.get.Get(octx, k)
			lat := time.Since(start)
			switch {
			case err == nil:
				st.hits++
			case errors.Is(err, api.ErrNotFound) && st.wasPut[j]:
				st.failed++
			case errors.Is(err, api.ErrNotFound):
				st.misses++
			default:
				if ctx.Err() != nil {
					cancel()
					return // the run ended during the operation
				}
				st.fail(err)
			}
			st.getLat.record(lat)
		} else {
			err := st.put.Put(octx, api.Put{TTL: o.ttl, Replication: o.replication, Key: k, Value: value})
			if err == nil && o.putConfirm {
				_, err = st.put.Get(octx, k)
				if errors.Is(err, api.ErrNotFound) {
					st.failed++
					err = nil
				}
			}
			lat := time.Since(start)
			switch {
			case err != nil && ctx.Err() != nil:
				cancel()
				return
			case err != nil:
				st.fail(err)
			case !o.getViaOther:
				st.wasPut[j] = true // this connection's GETs must see it
			}
			st.putLat.record(lat)
		}
		cancel()
		done.Add(1)
	}
}

// latencyHistogram collects the latencies of one operation type from every
// worker: an HdrHistogram of microseconds with 3 significant digits (each
// percentile within 0.1% of the latency it stands for), up to an hour
// (longer ones count as an hour; max stays exact). Its memory is fixed
// (about 180 KiB), however many operations it counts.
type latencyHistogram struct {
	mu  sync.Mutex // guards h, max
	h   *hdrhistogram.Histogram
	max time.Duration
}

// histogramMaxMicros is the longest latency the histogram tells apart.
const histogramMaxMicros = int64(time.Hour / time.Microsecond)

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{h: hdrhistogram.New(1, histogramMaxMicros, 3)}
}

func (l *latencyHistogram) record(d time.Duration) {
	us := min(max(d.Microseconds(), 1), histogramMaxMicros)
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.h.RecordValue(us) // in range by construction
	l.max = max(l.max, d)
}

func (l *latencyHistogram) report() latencyReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := latencyReport{Count: l.h.TotalCount()}
	if r.Count == 0 {
		return r
	}
	r.Max = float64(l.max) / float64(time.Millisecond)
	// The histogram answers with the top of a value's bucket, which can
	// lie just above the exact max.
	ms := func(q float64) float64 { return min(float64(l.h.ValueAtQuantile(q))/1e3, r.Max) }
	r.P50, r.P90, r.P99, r.P999 = ms(50), ms(90), ms(99), ms(99.9)
	return r
}

func printBench(w io.Writer, r benchReport) {
	if r.Preloaded+r.PreloadFailed > 0 {
		fmt.Fprintf(w, "preload: %d keys put and confirmed in %.2fs, %d not readable after their PUT\n",
			r.Preloaded, r.PreloadSeconds, r.PreloadFailed)
	}
	fmt.Fprintf(w, "%d ops in %.2fs against %s (%d connections, %d-byte values, %d keys): %.0f ops/s\n",
		r.Ops, r.Seconds, strings.Join(r.Addrs, ","), r.Concurrency, r.ValueSize, r.Keys, r.OpsPerSec)
	putNote := "time to write the PUT; the protocol does not acknowledge PUTs (see --put-confirm)"
	if r.PutConfirm {
		putNote = "PUT plus confirming GET round trip"
	}
	for _, l := range []struct {
		name string
		r    latencyReport
		note string
	}{{"PUT", r.Put, putNote}, {"GET", r.Get, "round trip"}} {
		fmt.Fprintf(w, "%-4s %8d ops  p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms  (%s)\n",
			l.name, l.r.Count, l.r.P50, l.r.P90, l.r.P99, l.r.P999, l.r.Max, l.note)
	}
	fmt.Fprintf(w, "GETs: %d hits, %d misses (key not put yet), %d failed (put earlier, answered FAILURE); %d errors\n",
		r.GetHits, r.GetMisses, r.FailedGets, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}
