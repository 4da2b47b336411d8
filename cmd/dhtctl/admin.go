package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/crypto"
)

// defaultAdmin is the admin address dhtd listens on by default.
const defaultAdmin = "127.0.0.1:7410"

// adminFlags are the flags of every command that talks to an admin server.
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "admin",
			Usage:   "admin HTTP `HOST:PORT` of a running dhtd",
			Value:   defaultAdmin,
			EnvVars: []string{"DURACHORD_ADMIN"},
		},
		&cli.StringFlag{
			Name:    "admin-token-file",
			Usage:   "`FILE` (mode 0600) with the node's admin token (its admin.token_file)",
			EnvVars: []string{"DURACHORD_ADMIN_TOKEN_FILE"},
		},
	}
}

// adminClient is where an admin server is and the token it wants.
type adminClient struct {
	addr  string
	token string // "" sends none
}

// newAdminClient reads the admin flags of c.
func newAdminClient(c *cli.Context) (adminClient, error) {
	ac := adminClient{addr: c.String("admin")}
	if path := c.String("admin-token-file"); path != "" {
		tok, err := crypto.LoadToken(path)
		if err != nil {
			return ac, fmt.Errorf("--admin-token-file: %v", err)
		}
		ac.token = tok.String()
	}
	return ac, nil
}

// request returns a GET of path on the admin server, with the token.
func (ac adminClient) request(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ac.addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %v", ac.addr, err)
	}
	if ac.token != "" {
		req.Header.Set("Authorization", "Bearer "+ac.token)
	}
	return req, nil
}

// statusError describes a refused admin request in one line.
func (ac adminClient) statusError(path string, resp *http.Response, body []byte) error {
	hint := ""
	if resp.StatusCode == http.StatusUnauthorized {
		if ac.token == "" {
			hint = " (the node wants a token: --admin-token-file)"
		} else {
			hint = " (the node refused the token of --admin-token-file)"
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Errorf("%s%s: %s: %s%s", ac.addr, path, resp.Status, msg, hint)
}

// nodeStatus is the JSON a node's admin /status serves (chord.Status; the
// admin endpoints are listed in docs/configuration.md).
type nodeStatus struct {
	ID          string     `json:"id"`
	Address     string     `json:"address"`
	Predecessor *peer      `json:"predecessor"`
	Successors  []peer     `json:"successors"`
	Fingers     []peer     `json:"fingers,omitempty"`
	Records     recordsCnt `json:"records"`
	Ready       bool       `json:"ready"`
	// Positions are the IDs of every ring position the node stands at;
	// PositionStatus each one's view (virtual nodes). Absent from nodes
	// older than virtual nodes.
	Positions      []string     `json:"positions,omitempty"`
	PositionStatus []nodeStatus `json:"position_status,omitempty"`
}

type peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

type recordsCnt struct {
	Primary int64 `json:"primary"`
	Replica int64 `json:"replica"`
}

// adminGet fetches path from a node's admin server and decodes JSON into v
// (or returns the body when v is nil).
func adminGet(ctx context.Context, ac adminClient, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 35*time.Second)
	defer cancel()
	req, err := ac.request(ctx, path)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no node answers at %s: %v", ac.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s%s: %v", ac.addr, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return ac.statusError(path, resp, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s%s: not a durachord admin answer: %v", ac.addr, path, err)
	}
	return nil
}

func unwrapURLError(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a running node's view: ID, predecessor, successors, fingers, records",
		UsageText: "dhtctl status [--admin HOST:PORT] [--admin-token-file FILE] [--json]",
		Flags:     append(adminFlags(), &cli.BoolFlag{Name: "json", Usage: "print the node's /status JSON"}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return failf("status takes no arguments, have %q", c.Args().First())
			}
			ac, err := newAdminClient(c)
			if err != nil {
				return failf("%v", err)
			}
			var st nodeStatus
			if err := adminGet(c.Context, ac, "/status", &st); err != nil {
				return failf("%v", err)
			}
			out := c.App.Writer
			if c.Bool("json") {
				return printJSON(out, st)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			ready := "not ready"
			if st.Ready {
				ready = "ready"
			}
			fmt.Fprintf(tw, "node\t%s\t%s\t%s\n", st.ID, st.Address, ready)
			if st.Predecessor != nil {
				fmt.Fprintf(tw, "predecessor\t%s\t%s\n", st.Predecessor.ID, st.Predecessor.Address)
			} else {
				fmt.Fprintf(tw, "predecessor\t(none)\n")
			}
			for i, s := range st.Successors {
				fmt.Fprintf(tw, "successor %d\t%s\t%s\n", i+1, s.ID, s.Address)
			}
			fmt.Fprintf(tw, "fingers\t%d distinct\n", len(distinct(st.Fingers)))
			if len(st.Positions) > 1 {
				total := 0.0
				for i, p := range st.PositionStatus {
					s := positionShare(p)
					total += s
					fmt.Fprintf(tw, "position %d\t%s\t%.1f%% of the circle\n", i, p.ID, 100*s)
				}
				fmt.Fprintf(tw, "share\t%.1f%% of the circle at %d positions\n", 100*total, len(st.PositionStatus))
			}
			fmt.Fprintf(tw, "records\t%d primary\t%d replica\n", st.Records.Primary, st.Records.Replica)
			return tw.Flush()
		},
	}
}

func distinct(ps []peer) []peer {
	seen := map[string]bool{}
	var out []peer
	for _, p := range ps {
		if !seen[p.ID] {
			seen[p.ID] = true
			out = append(out, p)
		}
	}
	return out
}

// positionShare returns the fraction of the circle a position owns, from its
// predecessor to itself (0 when the predecessor is not known).
func positionShare(p nodeStatus) float64 {
	if p.Predecessor == nil {
		return 0
	}
	return ringShare([]nodeStatus{{ID: p.Predecessor.ID}, p})[1]
}

// ringShare returns the fraction of the circle in (pred, id] for each node of
// a ring given in ring order.
func ringShare(ring []nodeStatus) []float64 {
	mod := new(big.Int).Lsh(big.NewInt(1), 256)
	out := make([]float64, len(ring))
	for i := range ring {
		prev := ring[(i+len(ring)-1)%len(ring)].ID
		a, okA := new(big.Int).SetString(prev, 16)
		b, okB := new(big.Int).SetString(ring[i].ID, 16)
		if !okA || !okB {
			continue
		}
		d := new(big.Int).Sub(b, a)
		d.Mod(d, mod)
		if len(ring) == 1 {
			d.Set(mod)
		}
		f, _ := new(big.Rat).SetFrac(d, mod).Float64()
		out[i] = f
	}
	return out
}

func ringCommand() *cli.Command {
	return &cli.Command{
		Name:      "ring",
		Usage:     "walk the whole ring from a node: each node, its share of the circle, its records",
		UsageText: "dhtctl ring [--admin HOST:PORT] [--admin-token-file FILE] [--json]",
		Flags:     append(adminFlags(), &cli.BoolFlag{Name: "json", Usage: "print the ring as a JSON list of node statuses, in ring order"}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return failf("ring takes no arguments, have %q", c.Args().First())
			}
			ac, err := newAdminClient(c)
			if err != nil {
				return failf("%v", err)
			}
			var ring []nodeStatus
			if err := adminGet(c.Context, ac, "/ring", &ring); err != nil {
				return failf("%v", err)
			}
			nodes := physicalNodes(ring)
			out := c.App.Writer
			if c.Bool("json") {
				list := make([]nodeStatus, len(nodes))
				for i, n := range nodes {
					list[i] = n.nodeStatus
				}
				return printJSON(out, list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "#\tid\taddress\tpositions\tshare\tprimary\treplica\tready\t")
			var prim, repl int64
			positions := 0
			for i, n := range nodes {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%.1f%%\t%d\t%d\t%v\t\n", i+1, shortHex(n.ID), n.Address,
					n.count, 100*n.share, n.Records.Primary, n.Records.Replica, n.Ready)
				prim += n.Records.Primary
				repl += n.Records.Replica
				positions += n.count
			}
			fmt.Fprintf(tw, "\t%d nodes\t\t%d\t\t%d\t%d\t\t\n", len(nodes), positions, prim, repl)
			return tw.Flush()
		},
	}
}

// physicalNode is one node of the ring as an operator sees it: the status of
// its position 0 (SPEC's fields, with every position's ID), how many of its
// positions the walk met and their total share of the circle.
type physicalNode struct {
	nodeStatus
	count int
	share float64
}

// physicalNodes groups a walk's positions (in ring order) by node: one
// entry per address, in the order of each node's first position, carrying
// the status of the node's ID position when the walk met it.
func physicalNodes(ring []nodeStatus) []physicalNode {
	share := ringShare(ring)
	var out []physicalNode
	at := map[string]int{}
	for i, st := range ring {
		j, ok := at[st.Address]
		if !ok {
			j = len(out)
			at[st.Address] = j
			out = append(out, physicalNode{nodeStatus: st})
		}
		n := &out[j]
		n.count++
		n.share += share[i]
		if len(st.Positions) > 0 && st.ID == st.Positions[0] {
			n.nodeStatus = st // the node ID's own view
		}
		n.Ready = n.Ready && st.Ready
	}
	for i := range out {
		out[i].PositionStatus = nil
		if len(out[i].Positions) > 0 {
			out[i].ID = out[i].Positions[0]
		}
	}
	return out
}

func shortHex(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "copy a running node's database, consistently, into a file",
		UsageText: "dhtctl backup [--admin HOST:PORT] [--admin-token-file FILE] --out FILE\n\n" +
			"The copy is one read transaction of the live database, streamed over the admin address.\n" +
			"Inspect it with: dhtctl dump --data-dir FILE",
		Flags: append(adminFlags(),
			&cli.StringFlag{Name: "out", Usage: "`FILE` to write (must not exist)", Required: true},
			&cli.BoolFlag{Name: "json", Usage: `print {"file":..,"bytes":..}`},
		),
		Action: func(c *cli.Context) error {
			out := c.String("out")
			if _, err := os.Stat(out); err == nil {
				return failf("backup: %s already exists", out)
			}
			ac, err := newAdminClient(c)
			if err != nil {
				return failf("backup: %v", err)
			}
			n, err := backup(c.Context, ac, out)
			if err != nil {
				return failf("backup: %v", err)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]any{"file": out, "bytes": n})
			}
			fmt.Fprintf(c.App.Writer, "wrote %s (%d bytes)\n", out, n)
			return nil
		},
	}
}

// backup streams /backup into a temporary file beside out, syncs it and
// renames it into place, so that out is either whole or absent.
func backup(ctx context.Context, ac adminClient, out string) (int64, error) {
	req, err := ac.request(ctx, "/backup")
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no node answers at %s: %v", ac.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, ac.statusError("/backup", resp, b)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".backup-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("stream ended after %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), out)
}
