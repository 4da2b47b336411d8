package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/crypto"
)

// devnetNode is one node of a development ring, as --json prints it.
type devnetNode struct {
	ID      string `json:"id"`
	P2P     string `json:"p2p"`
	API     string `json:"api"`
	Admin   string `json:"admin"`
	DataDir string `json:"data_dir"`
	// AdminTokenFile holds the admin token every node of the ring wants
	// (one for all of them).
	AdminTokenFile string `json:"admin_token_file"`

	token string // the content of AdminTokenFile
	ca    *crypto.CA
	dir   string
	log   string
	cmd   *exec.Cmd
	// exited receives the process's exit once it ends.
	exited chan error
}

// devnetConfig makes a development ring converge in seconds rather than the
// production defaults' tens of seconds.
const devnetConfig = `# written by dhtctl devnet
log_level = "info"
shutdown_timeout = "10s"

[ring]
stabilize_interval = "200ms"
fix_fingers_interval = "200ms"
check_predecessor_interval = "500ms"

[records]
repair_interval = "5s"
sweep_interval = "10s"
`

func devnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "devnet",
		Usage: "start a complete local ring for trying durachord (stops every node on Ctrl-C)",
		UsageText: "dhtctl devnet [--nodes 4] [--demo] [--json] [--dir DIR] [--dhtd PATH] [--duration D] [--pprof]\n\n" +
			"Makes a CA, node certificates and an HMAC key in a temporary folder, starts N dhtd\n" +
			"processes on 127.0.0.1, waits until the ring is stable, and prints each node's addresses\n" +
			"with commands to paste. It runs until Ctrl-C (or --duration), then stops every node and\n" +
			"removes the folder (unless --dir was given). Node logs: <dir>/nodeN/dhtd.log.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Value: 4, Usage: "number of nodes (1..64)"},
			&cli.BoolFlag{Name: "demo", Usage: "once ready, put a value through the first node and get it through the last"},
			&cli.BoolFlag{Name: "json", Usage: `once ready, print one line {"nodes":[{"id","p2p","api","admin","data_dir"},..]}`},
			&cli.StringFlag{Name: "dir", Usage: "keep everything in `DIR` (created; kept on exit) instead of a temporary folder"},
			&cli.StringFlag{Name: "dhtd", Usage: "`PATH` of the dhtd program (default: next to dhtctl, then $PATH)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop by itself after this long (0: run until Ctrl-C)"},
			&cli.DurationFlag{Name: "ready-timeout", Value: 90 * time.Second, Usage: "give up if the ring is not stable within this long"},
			&cli.IntFlag{Name: "vnodes", Value: 4, Usage: "ring positions per node (ring.vnodes, 1..16; 4 is the product default)"},
			&cli.BoolFlag{Name: "pprof", Usage: "serve the Go profiler on every node's admin address (admin.pprof; /debug/pprof/, with the admin token)"},
		},
		Action: runDevnet,
	}
}

func findDHTD(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", fmt.Errorf("--dhtd %s: %v", flag, err)
		}
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "dhtd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("dhtd"); err == nil {
		return p, nil
	}
	return "", errors.New("dhtd not found next to dhtctl or in $PATH: run `make build` or pass --dhtd")
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runDevnet(c *cli.Context) error {
	n := c.Int("nodes")
	if n < 1 || n > 64 {
		return failf("devnet: --nodes must be 1..64, have %d", n)
	}
	if c.NArg() > 0 {
		return failf("devnet takes no arguments, have %q", c.Args().First())
	}
	dhtd, err := findDHTD(c.String("dhtd"))
	if err != nil {
		return failf("devnet: %v", err)
	}
	dir, keep := c.String("dir"), c.IsSet("dir")
	if keep {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return failf("devnet: %v", err)
		}
	} else if dir, err = os.MkdirTemp("", "durachord-devnet-"); err != nil {
		return failf("devnet: %v", err)
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	out, errw := c.App.Writer, c.App.ErrWriter
	jsonOut := c.Bool("json")
	say := func(format string, args ...any) {
		if !jsonOut {
			fmt.Fprintf(errw, format+"\n", args...)
		}
	}

	ctx, stop := untilSignalOrDuration(c)
	defer stop()

	vn := c.Int("vnodes")
	if vn < 1 || vn > 16 {
		return failf("devnet: --vnodes must be in 1..16, have %d", vn)
	}
	nodes, err := devnetPrepare(dir, n, c.Bool("pprof"), vn)
	if err != nil {
		return failf("devnet: %v", err)
	}
	say("starting %d nodes in %s", n, dir)
	defer devnetStop(nodes, errw)
	for i, nd := range nodes {
		bootstrap := ""
		if i > 0 {
			bootstrap = nodes[0].P2P
		}
		if err := nd.startListening(ctx, dhtd, dir, bootstrap); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted while starting
			}
			return failf("devnet: start node %d: %v", i+1, err)
		}
	}

	rctx, cancel := context.WithTimeout(ctx, c.Duration("ready-timeout"))
	err = devnetWaitStable(rctx, nodes, vn)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return failf("devnet: ring not stable: %v (logs in %s/node*/dhtd.log; use --dir to keep them)", err, dir)
	}

	if jsonOut {
		line, _ := json.Marshal(map[string]any{"nodes": nodes})
		fmt.Fprintln(out, string(line))
	} else {
		printDevnet(out, nodes)
	}
	if c.Bool("demo") {
		if err := devnetDemo(ctx, out, nodes); err != nil {
			return failf("devnet: demo: %v", err)
		}
	}
	say("ring of %d nodes running; Ctrl-C stops it", n)
	for {
		select {
		case <-ctx.Done():
			say("stopping %d nodes", n)
			return nil
		case <-time.After(time.Second):
		}
		for i, nd := range nodes {
			select {
			case err := <-nd.exited:
				nd.exited <- err // keep it for devnetStop
				return failf("devnet: node %d exited unexpectedly (%v); its log: %s", i+1, err, nd.log)
			default:
			}
		}
	}
}

// devnetPrepare makes the CA, the HMAC key and each node's folder,
// certificate and addresses.
func devnetPrepare(dir string, n int, pprof bool, vnodes int) ([]*devnetNode, error) {
	caDir := filepath.Join(dir, "ca")
	if err := crypto.InitCA(caDir); err != nil {
		return nil, err
	}
	ca, err := crypto.LoadCA(caDir)
	if err != nil {
		return nil, err
	}
	key, err := crypto.NewHMACKey()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "hmac.keys"), []byte(key+"\n"), 0o600); err != nil {
		return nil, err
	}
	// An admin token, as a ring off loopback must have: the nodes want it
	// though they listen on loopback, so that the ring is tried as it runs.
	token, err := crypto.NewToken()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "admin.token")
	if err := writeNewFile(tokenFile, []byte(token+"\n")); err != nil {
		return nil, err
	}
	config := strings.Replace(devnetConfig, "[ring]\n", fmt.Sprintf("[ring]\nvnodes = %d\n", vnodes), 1) +
		fmt.Sprintf("\n[admin]\ntoken_file = %q\npprof = %t\n", tokenFile, pprof)
	nodes := make([]*devnetNode, n)
	for i := range nodes {
		nd := &devnetNode{dir: filepath.Join(dir, "node"+strconv.Itoa(i+1)), AdminTokenFile: tokenFile, token: token, ca: ca}
		nd.DataDir = filepath.Join(nd.dir, "data")
		nd.log = filepath.Join(nd.dir, "dhtd.log")
		if err := nd.assign(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(nd.dir, "config.toml"), []byte(config), 0o600); err != nil {
			return nil, err
		}
		nodes[i] = nd
	}
	return nodes, nil
}

// assign gives the node addresses that are free now and a certificate for
// its p2p address (a new key, so a new ID).
func (nd *devnetNode) assign() error {
	for _, a := range []*string{&nd.P2P, &nd.API, &nd.Admin} {
		var err error
		if *a, err = freeAddr(); err != nil {
			return err
		}
	}
	cert, err := nd.ca.Issue(nd.P2P)
	if err != nil {
		return err
	}
	if err := cert.WriteDir(filepath.Join(nd.dir, "tls"), true); err != nil {
		return err
	}
	nd.ID = cert.ID.String()
	return nil
}

// args returns the node's dhtd command line (bootstrap: the first node's p2p
// address, "" for the first node).
func (nd *devnetNode) args(dir, bootstrap string) []string {
	args := []string{"--config", filepath.Join(nd.dir, "config.toml"),
		"--p2p-address", nd.P2P, "--api-address", nd.API, "--admin-address", nd.Admin,
		"--data-dir", nd.DataDir, "--tls-dir", filepath.Join(nd.dir, "tls"),
		"--hmac-keys", filepath.Join(dir, "hmac.keys")}
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	return args
}

// Ports are picked free a moment before a node binds them, and a process
// that starts meanwhile (another node's outgoing connection, any program)
// may take one. So a node is started, and the next one only once it
// listens; a node that could not bind gets new addresses (and a new
// certificate) and starts again, up to bindTries times.
const (
	bindTries   = 4
	listenAfter = 30 * time.Second
)

// startListening starts the node and waits until it listens, starting it
// again on new addresses if it could not bind one.
func (nd *devnetNode) startListening(ctx context.Context, dhtd, dir, bootstrap string) error {
	for try := 1; ; try++ {
		var logged int64 // the log's length before this start
		if fi, err := os.Stat(nd.log); err == nil {
			logged = fi.Size()
		}
		if err := nd.start(dhtd, nd.args(dir, bootstrap)); err != nil {
			return err
		}
		err := nd.waitListening(ctx, logged)
		if err == nil || try == bindTries || !nd.logSays(logged, "address already in use") {
			return err
		}
		if err := os.RemoveAll(nd.DataDir); err != nil {
			return err
		}
		if err := nd.assign(); err != nil {
			return err
		}
	}
}

// waitListening waits until the node logs, after offset from, that it runs
// (dhtd does once its listeners are bound), or the process exits, or
// listenAfter has passed.
func (nd *devnetNode) waitListening(ctx context.Context, from int64) error {
	deadline := time.Now().Add(listenAfter)
	for {
		select {
		case err := <-nd.exited:
			nd.exited <- err // keep it for devnetStop
			return fmt.Errorf("exited (%v); its log: %s", err, nd.log)
		default:
		}
		if nd.logSays(from, "node running") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not running after %v; its log: %s", listenAfter, nd.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logSays reports whether the node's log, from offset from on, holds text.
func (nd *devnetNode) logSays(from int64, text string) bool {
	b, err := os.ReadFile(nd.log)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return strings.Contains(string(b[from:]), text)
}

func (nd *devnetNode) start(dhtd string, args []string) error {
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	nd.cmd = exec.Command(dhtd, args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	nd.cmd.SysProcAttr = nodeProcAttr()
	if err := nd.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	nd.exited = make(chan error, 1)
	go func() {
		err := nd.cmd.Wait()
		logf.Close()
		nd.exited <- err
	}()
	return nil
}

// devnetWaitStable polls until every node is ready and the ring walked from
// the first node holds every node in ID order.
func devnetWaitStable(ctx context.Context, nodes []*devnetNode, vnodes int) error {
	var last error
	for {
		last = devnetCheck(ctx, nodes, vnodes)
		if last == nil {
			return nil
		}
		for i, nd := range nodes {
			select {
			case err := <-nd.exited:
				nd.exited <- err
				return fmt.Errorf("node %d exited (%v); its log: %s", i+1, err, nd.log)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// devnetCheck says why the ring is not stable yet (nil once it is): every
// node stands at its vnodes positions, is ready, and each position's
// successor is the next position on the circle.
func devnetCheck(ctx context.Context, nodes []*devnetNode, vnodes int) error {
	sts := make([]nodeStatus, len(nodes))
	var want []string
	for i, nd := range nodes {
		if err := adminGet(ctx, adminClient{addr: nd.Admin, token: nd.token}, "/status", &sts[i]); err != nil {
			return err
		}
		st := sts[i]
		if !st.Ready {
			return fmt.Errorf("node %d not ready", i+1)
		}
		if len(st.PositionStatus) == 0 {
			st.PositionStatus = []nodeStatus{st}
		}
		if len(st.PositionStatus) != vnodes {
			return fmt.Errorf("node %d stands at %d of %d positions", i+1, len(st.PositionStatus), vnodes)
		}
		sts[i] = st
		for _, p := range st.PositionStatus {
			want = append(want, p.ID)
		}
	}
	sort.Strings(want)
	for i, st := range sts {
		for _, p := range st.PositionStatus {
			idx := sort.SearchStrings(want, p.ID)
			next := want[(idx+1)%len(want)]
			if len(want) > 1 && (len(p.Successors) == 0 || p.Successors[0].ID != next) {
				return fmt.Errorf("node %d: successor of position %s not settled", i+1, shortHex(p.ID))
			}
		}
	}
	return nil
}

func printDevnet(w io.Writer, nodes []*devnetNode) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "admin token file: %s\n", nodes[0].AdminTokenFile)
	fmt.Fprintln(tw, "node\tid\tp2p\tapi\tadmin\tdata dir")
	for i, nd := range nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, shortHex(nd.ID), nd.P2P, nd.API, nd.Admin, nd.DataDir)
	}
	_ = tw.Flush()
	last := nodes[len(nodes)-1]
	prog := progName()
	fmt.Fprintf(w, "\nTry it (from another terminal):\n")
	fmt.Fprintf(w, "  %s put --api %s hello 'hello, world'\n", prog, nodes[0].API)
	fmt.Fprintf(w, "  %s get --api %s hello\n", prog, last.API)
	fmt.Fprintf(w, "  %s ring --admin %s --admin-token-file %s\n", prog, nodes[0].Admin, nodes[0].AdminTokenFile)
	fmt.Fprintf(w, "  %s bench --api %s\n", prog, joinAPIs(nodes))
	fmt.Fprintf(w, "The ring page, in a browser (the token goes into a cookie and leaves the address bar):\n")
	fmt.Fprintf(w, "  http://%s/ui?token=$(cat %s)\n\n", nodes[0].Admin, nodes[0].AdminTokenFile)
}

// progName is dhtctl as the user invoked it (bin/dhtctl after make demo), so
// that the printed commands paste as they are.
func progName() string {
	if p := os.Args[0]; strings.Contains(p, "/") {
		return p
	}
	return "dhtctl"
}

func joinAPIs(nodes []*devnetNode) string {
	s := ""
	for i, nd := range nodes {
		if i > 0 {
			s += ","
		}
		s += nd.API
	}
	return s
}

// devnetDemo puts a value through the first node and reads it through the
// last, over the client protocol.
func devnetDemo(ctx context.Context, w io.Writer, nodes []*devnetNode) error {
	var key [api.KeySize]byte
	copy(key[:], "hello")
	value := []byte("hello from durachord at " + time.Now().Format(time.RFC3339))
	first, last := nodes[0], nodes[len(nodes)-1]

	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pc, err := api.Dial(dctx, first.API)
	if err != nil {
		return err
	}
	defer pc.Close()
	if err := pc.Put(dctx, api.Put{TTL: 3600, Replication: 3, Key: key, Value: value}); err != nil {
		return err
	}
	// Read-your-writes on the same connection: the put has been applied once
	// this get answers.
	if _, err := pc.Get(dctx, key); err != nil {
		return fmt.Errorf("get after put on %s: %w", first.API, err)
	}
	fmt.Fprintf(w, "PUT  via node 1 (%s): key \"hello\" = %q\n", first.API, value)
	gc, err := api.Dial(dctx, last.API)
	if err != nil {
		return err
	}
	defer gc.Close()
	got, err := gc.Get(dctx, key)
	if err != nil {
		return fmt.Errorf("get via %s: %w", last.API, err)
	}
	fmt.Fprintf(w, "GET  via node %d (%s): key \"hello\" = %q\n\n", len(nodes), last.API, got)
	return devnetShares(dctx, w, nodes)
}

// devnetShares prints each node's share of the circle, from a walk of the
// ring, and how the most loaded compares with the mean.
func devnetShares(ctx context.Context, w io.Writer, nodes []*devnetNode) error {
	first := nodes[0]
	var ring []nodeStatus
	if err := adminGet(ctx, adminClient{addr: first.Admin, token: first.token}, "/ring", &ring); err != nil {
		return fmt.Errorf("walk the ring: %w", err)
	}
	num := map[string]int{}
	for i, nd := range nodes {
		num[nd.P2P] = i + 1
	}
	phys := physicalNodes(ring)
	slices.SortFunc(phys, func(a, b physicalNode) int { return num[a.Address] - num[b.Address] })
	fmt.Fprintln(w, "Shares of the circle (the keys each node owns):")
	most, sum := 0.0, 0.0
	for _, n := range phys {
		fmt.Fprintf(w, "  node %d  %5.1f%%  at %d ring positions\n", num[n.Address], 100*n.share, n.count)
		most, sum = max(most, n.share), sum+n.share
	}
	if len(phys) > 1 && sum > 0 {
		fmt.Fprintf(w, "  the most loaded node owns %.2f times the mean share (virtual nodes aim at 1.25 or less: docs/vnodes.md)\n", most/(sum/float64(len(phys))))
	}
	fmt.Fprintln(w)
	return nil
}

// devnetStop asks every node to leave (SIGTERM), waits, and kills the ones
// still running after the grace period.
func devnetStop(nodes []*devnetNode, errw io.Writer) {
	for _, nd := range nodes {
		if nd != nil && nd.cmd != nil && nd.cmd.Process != nil {
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(15 * time.Second)
	for i, nd := range nodes {
		if nd == nil || nd.cmd == nil || nd.exited == nil {
			continue
		}
		select {
		case <-nd.exited:
		case <-deadline:
			fmt.Fprintf(errw, "devnet: node %d did not stop in time; killing it\n", i+1)
			_ = nd.cmd.Process.Kill()
			<-nd.exited
		}
	}
}

// untilSignalOrDuration returns a context that ends on SIGINT or SIGTERM, or
// after the command's --duration when it is positive; stop releases both.
func untilSignalOrDuration(c *cli.Context) (context.Context, context.CancelFunc) {
	ctx, stopSignals := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	d := c.Duration("duration")
	if d <= 0 {
		return ctx, stopSignals
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, func() { cancel(); stopSignals() }
}
