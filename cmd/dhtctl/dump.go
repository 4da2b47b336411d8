package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/durachord/durachord/store"
	"github.com/urfave/cli/v2"
)

const dumpDescription = `Prints every record in a node's database, read-only: key (hex), ring
position (hex), state (live, expired, TAMPERED), role (primary or replica),
requested replication, version (clock.node), expiry (UTC), value size and a
short preview of the value. Then one summary line.

Run it with the node stopped: a running node holds the database, and dump then
says so in one line (after --lock-timeout) instead of waiting.

--verify checks every record's HMAC with the node secret (node.secret in the
data directory) and the database's consistency (pages and expiry index). Any
tampered record or inconsistency is reported in the summary and dump exits 2.
Without --verify, records are still checked when node.secret is readable.

--json prints one JSON object per line (JSON Lines): one per record,
  {"type":"record","key":HEX,"position":HEX,"state":"live"|"expired"|"tampered",
   "primary":BOOL,"replication":N,"version":{"clock":N,"node":N},
   "expiry":RFC3339,"expired":BOOL,"tampered":BOOL,"value_size":N,
   "preview":STRING,"error":STRING (tampered only)}
then a final summary object,
  {"type":"summary","records":N,"primary":N,"replica":N,"expired":N,
   "tampered":N,"verified":BOOL,"consistent":BOOL|null,"error":STRING}.

Exit codes: 0 success; 2 a missing data directory or database, a database in
use, one it cannot read, or (with --verify) a tampered record or an
inconsistency.`

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:        "dump",
		Usage:       "print every record of a stopped node's database (read-only)",
		Description: dumpDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:     "data-dir",
				Usage:    "the node's data `DIR` (holding records.db and node.secret), or a database file such as a backup",
				Required: true,
			},
			&cli.StringFlag{
				Name:  "secret",
				Usage: "the node secret `FILE` that signs the records (default: node.secret beside the database)",
			},
			&cli.BoolFlag{Name: "json", Usage: "JSON Lines: one object per record, then a summary object"},
			&cli.BoolFlag{Name: "verify", Usage: "check every record's HMAC and the database consistency; exit 2 on any problem"},
			&cli.DurationFlag{
				Name:  "lock-timeout",
				Usage: "how long to wait for a database held by a running node",
				Value: 2 * time.Second,
			},
		},
		Action: runDump,
	}
}

// dumpRecord is one --json record line.
type dumpRecord struct {
	Type        string        `json:"type"`
	Key         string        `json:"key"`
	Position    string        `json:"position"`
	State       string        `json:"state"`
	Primary     bool          `json:"primary"`
	Replication uint8         `json:"replication"`
	Version     store.Version `json:"version"`
	Expiry      string        `json:"expiry"`
	Expired     bool          `json:"expired"`
	Tampered    bool          `json:"tampered"`
	ValueSize   int           `json:"value_size"`
	Preview     string        `json:"preview"`
	Error       string        `json:"error,omitempty"`
}

// dumpSummary is the --json summary line.
type dumpSummary struct {
	Type       string `json:"type"`
	Records    int    `json:"records"`
	Primary    int    `json:"primary"`
	Replica    int    `json:"replica"`
	Expired    int    `json:"expired"`
	Tampered   int    `json:"tampered"`
	Verified   bool   `json:"verified"`
	Consistent *bool  `json:"consistent"`
	Error      string `json:"error,omitempty"`
}

func runDump(c *cli.Context) error {
	dir := c.String("data-dir")
	fi, err := os.Stat(dir)
	if err != nil || (!fi.IsDir() && !fi.Mode().IsRegular()) {
		return failf("data directory %s does not exist", dir)
	}
	cfg := store.DefaultConfig()
	cfg.ReadOnly = true
	cfg.Timeout = c.Duration("lock-timeout")
	cfg.SecretPath = c.String("secret")
	secret := cfg.SecretPath
	if secret == "" {
		secret = filepath.Join(dir, store.SecretFile)
		if fi.Mode().IsRegular() {
			secret = filepath.Join(filepath.Dir(dir), store.SecretFile)
		}
	}
	s, err := store.Open(dir, cfg)
	switch {
	case errors.Is(err, store.ErrLocked):
		return failf("%s: database is in use by a running node; stop the node first", dir)
	case errors.Is(err, fs.ErrNotExist):
		return failf("no database in %s (%s is missing)", dir, store.DBFile)
	case err != nil:
		return failf("cannot read the database in %s: %v", dir, err)
	}
	defer s.Close()
	verify := c.Bool("verify")
	if verify && !s.Verifies() {
		return failf("--verify needs the node secret %s (or --secret FILE)", secret)
	}

	out := c.App.Writer
	asJSON := c.Bool("json")
	enc := json.NewEncoder(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "KEY\tPOSITION\tSTATE\tROLE\tREPL\tVERSION\tEXPIRY\tSIZE\tVALUE")
	}
	sum := dumpSummary{Type: "summary", Verified: s.Verifies()}
	err = s.ForEach(func(e store.Entry) error {
		d := newDumpRecord(e)
		sum.Records++
		switch {
		case e.Tampered:
			sum.Tampered++
		case e.Record.Primary:
			sum.Primary++
		default:
			sum.Replica++
		}
		if e.Expired {
			sum.Expired++
		}
		if asJSON {
			return enc.Encode(d)
		}
		role := "replica"
		if d.Primary {
			role = "primary"
		}
		state := d.State
		if e.Tampered {
			state = "TAMPERED"
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", d.Key, d.Position, state, role,
			d.Replication, d.Version, d.Expiry, d.ValueSize, d.Preview)
		return err
	})
	if err != nil {
		return failf("reading the database in %s: %v", dir, err)
	}
	var checkErr error
	if verify {
		checkErr = s.Check()
		ok := checkErr == nil
		sum.Consistent = &ok
		if checkErr != nil {
			sum.Error = checkErr.Error()
		}
	}
	if asJSON {
		if err := enc.Encode(sum); err != nil {
			return failf("writing output: %v", err)
		}
	} else {
		if err := tw.Flush(); err != nil {
			return failf("writing output: %v", err)
		}
		printDumpSummary(out, sum)
	}
	if verify && (sum.Tampered > 0 || checkErr != nil) {
		msg := fmt.Sprintf("verify failed: %d tampered record(s)", sum.Tampered)
		if checkErr != nil {
			msg += "; consistency check failed: " + checkErr.Error()
		}
		return failf("%s", msg)
	}
	return nil
}

func printDumpSummary(w io.Writer, sum dumpSummary) {
	check := "consistency not checked (use --verify)"
	switch {
	case sum.Consistent == nil:
	case *sum.Consistent:
		check = "consistency ok"
	default:
		check = "consistency FAILED: " + sum.Error
	}
	hmacs := "HMACs not checked (no node secret)"
	if sum.Verified {
		hmacs = fmt.Sprintf("%d tampered", sum.Tampered)
	}
	fmt.Fprintf(w, "%d records (%d primary, %d replica, %d expired), %s, %s\n",
		sum.Records, sum.Primary, sum.Replica, sum.Expired, hmacs, check)
}

func newDumpRecord(e store.Entry) dumpRecord {
	r := e.Record
	d := dumpRecord{
		Type:        "record",
		Key:         hex.EncodeToString(r.Key[:]),
		Position:    hex.EncodeToString(e.Position[:]),
		State:       "live",
		Primary:     r.Primary,
		Replication: r.Replication,
		Version:     r.Version,
		Expired:     e.Expired,
		Tampered:    e.Tampered,
		ValueSize:   len(r.Value),
		Preview:     preview(r.Value),
	}
	if !r.Expiry.IsZero() {
		d.Expiry = r.Expiry.UTC().Format(time.RFC3339)
	}
	switch {
	case e.Tampered:
		d.State = "tampered"
		if e.Err != nil {
			d.Error = e.Err.Error()
		}
	case e.Expired:
		d.State = "expired"
	}
	return d
}

// preview shows the start of a value: quoted text when it is printable
// UTF-8, else hex.
func preview(v []byte) string {
	const maxRunes, maxBytes = 24, 12
	if len(v) == 0 {
		return ""
	}
	printable := utf8.Valid(v)
	for _, r := range string(v) {
		if !unicode.IsPrint(r) {
			printable = false
			break
		}
	}
	if printable {
		runes := []rune(string(v))
		if len(runes) > maxRunes {
			return strconv.Quote(string(runes[:maxRunes])) + "..."
		}
		return strconv.Quote(string(v))
	}
	if len(v) > maxBytes {
		return "0x" + hex.EncodeToString(v[:maxBytes]) + "..."
	}
	return "0x" + hex.EncodeToString(v)
}
