// Command bench-ring measures durachord side by side with its peers on one
// machine, on the same load: a ring of dhtd processes (dhtctl devnet), an
// OpenDHT network (dhtnode, through ../shared/bench/opendht), a 3-member
// etcd cluster (through ../shared/bench/etcd) and the bare server (dhtctl
// bench bare-server: the client protocol in front of a map under a lock).
// It prints one table of ops/s, p50 and p99 for PUT and GET with the ratios
// of ours to each peer. `make bench-ring` builds and runs it.
//
// Each system gets a PUT phase then a GET phase of -ops operations from -c
// concurrent clients with -value-size values:
//   - ours: PUTs with --put-confirm (the PUT plus a GET of the key on the
//     same connection, which sees it once the owner and its replica holders
//     have it on disk), replication -replication; then GETs with --preload
//     and --get-via-other: every timed GET goes through another node than
//     the one that took the key's PUT (with one node, through that node);
//   - OpenDHT: bench.py's PUT (acknowledged by the closest nodes) and GET
//     issued by another client node than the writer;
//   - etcd: loadgen's PUT (fsynced on a majority) and linearizable GET
//     through another member than the writer;
//   - the bare server: the same dhtctl bench runs as ours, one address.
//
// A peer that is not installed (or needs root, which OpenDHT's private
// network namespace does) is skipped with one line; the others are measured.
// The systems run one after the other, never at once, each started fresh for
// every run (-reps) and stopped before the next, on SIGINT and SIGTERM too;
// every step has a deadline and the whole run -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options is what one bench-ring invocation measures.
type options struct {
	dhtctl      string        // path of the dhtctl program; dhtd is found next to it
	shared      string        // folder holding opendht/ and etcd/
	nodes       int           // ring size of ours and of OpenDHT
	conc        int           // concurrent clients
	valueSize   int           // bytes
	ops         int           // operations per phase
	replication int           // ours
	etcdMembers int           // etcd cluster size
	reps        int           // runs of every system; the table shows medians
	peers       []string      // which of opendht, etcd, bare to run
	timeout     time.Duration // the whole invocation
	jsonOut     string        // file to append each run's results to, one JSON line a run
}

var allPeers = []string{peerOpenDHT, peerEtcd, peerBare}

const (
	peerOpenDHT = "opendht"
	peerEtcd    = "etcd"
	peerBare    = "bare"
)

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-ring:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ring:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench-ring", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var peers string
	fs.StringVar(&o.dhtctl, "dhtctl", "bin/dhtctl", "path of dhtctl (dhtd next to it)")
	fs.StringVar(&o.shared, "shared", "../shared/bench", "folder with the peers' scripts (opendht/, etcd/)")
	fs.IntVar(&o.nodes, "nodes", 4, "nodes of our ring and of OpenDHT's network")
	fs.IntVar(&o.conc, "c", 32, "concurrent clients (connections)")
	fs.IntVar(&o.valueSize, "value-size", 100, "value size in bytes")
	fs.IntVar(&o.ops, "ops", 5000, "operations per phase (PUT, then GET)")
	fs.IntVar(&o.replication, "replication", 3, "replication of our PUTs")
	fs.IntVar(&o.etcdMembers, "etcd-members", 3, "members of the etcd cluster")
	fs.IntVar(&o.reps, "reps", 1, "runs of every system (the table shows medians)")
	fs.StringVar(&peers, "peers", strings.Join(allPeers, ","), "peers to measure besides ours: opendht, etcd, bare (comma-separated; empty for none)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "deadline of the whole run")
	fs.StringVar(&o.jsonOut, "json", "", "append each run's results to `FILE`, one JSON line a run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("takes no arguments, have %q", fs.Arg(0))
	}
	for _, p := range strings.Split(peers, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !contains(allPeers, p) {
			return o, fmt.Errorf("-peers: unknown peer %q (want %s)", p, strings.Join(allPeers, ", "))
		}
		o.peers = append(o.peers, p)
	}
	switch {
	case o.nodes < 1 || o.nodes > 64:
		return o, fmt.Errorf("-nodes %d: want 1..64", o.nodes)
	case o.conc < 1:
		return o, fmt.Errorf("-c %d: want at least 1", o.conc)
	case o.ops < o.conc:
		return o, fmt.Errorf("-ops %d is under -c %d", o.ops, o.conc)
	case o.valueSize < 1 || o.valueSize > 65495:
		return o, fmt.Errorf("-value-size %d: want 1..65495", o.valueSize)
	case o.replication < 1 || o.replication > 255:
		return o, fmt.Errorf("-replication %d: want 1..255", o.replication)
	case o.etcdMembers < 1:
		return o, fmt.Errorf("-etcd-members %d: want at least 1", o.etcdMembers)
	case o.reps < 1:
		return o, fmt.Errorf("-reps %d: want at least 1", o.reps)
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// run measures every system o.reps times and prints the table on stdout;
// progress and skips go to stderr.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	dhtctl, err := filepath.Abs(o.dhtctl)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dhtctl); err != nil {
		return fmt.Errorf("dhtctl: %w (run make build)", err)
	}
	o.dhtctl = dhtctl
	work, err := os.MkdirTemp("", "bench-ring-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	env := environment{nproc: nproc(), loadBefore: loadAverage(), started: time.Now().UTC()}
	systems := []system{ours{}}
	for _, p := range allPeers {
		if !contains(o.peers, p) {
			env.skipped = append(env.skipped, fmt.Sprintf("%s: not measured (not in -peers)", peerName(p, o)))
			continue
		}
		s, why := newPeer(ctx, p, o, work)
		if why != "" {
			env.skipped = append(env.skipped, fmt.Sprintf("%s: skipped (%s)", peerName(p, o), why))
			continue
		}
		systems = append(systems, s)
	}
	var runs []runResult
	for rep := 1; rep <= o.reps; rep++ {
		r := runResult{Rep: rep, Load: loadAverage()}
		for _, s := range systems {
			fmt.Fprintf(stderr, "bench-ring: run %d/%d: %s\n", rep, o.reps, s.name(o))
			res, err := s.measure(ctx, o, work, stderr)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("%s: %w (%v)", s.name(o), ctx.Err(), err)
				}
				fmt.Fprintf(stderr, "bench-ring: %s failed: %v\n", s.name(o), err)
				res = result{Failed: err.Error()}
			}
			res.System, res.Name = s.key(), s.name(o)
			r.Results = append(r.Results, res)
		}
		if o.jsonOut != "" {
			if err := appendJSON(o.jsonOut, o, env, r); err != nil {
				return err
			}
		}
		runs = append(runs, r)
	}
	env.loadAfter = loadAverage()
	printTable(stdout, o, env, runs)
	return nil
}
