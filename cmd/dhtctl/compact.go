package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/store"
)

const compactDescription = `Rewrites a stopped node's records.db without its free pages. The database
never shrinks by itself: pages freed by expired or handed-over records are
reused, not returned to the file system.

compact holds the database's lock throughout, writes a compacted copy beside
it (so it needs free space of about the live data's size), and verifies the
copy: bbolt's consistency check, the expiry index, the record counts (kept
in the database, copied from the original) against a recount, and every
record's HMAC with the node secret (node.secret in the data directory, or
--secret FILE). Only a copy that passes all of them is fsynced and renamed over records.db (then the
directory is fsynced). On any failure records.db is left as it was and the
copy is removed.

It prints the size before and after and the number of records. A progress bar
is drawn on stderr while the records are verified, when stderr is a terminal
(not with --json).

A database held by a running node is refused in one line after --lock-timeout.

Exit codes: 0 compacted; 2 a missing data directory, database or node secret,
a database in use, or a copy that failed verification.`

const restoreDescription = `Makes a backup (a file written by dhtctl backup) the database of a stopped
node's data directory.

restore first refuses a data directory whose database is in use by a running
node (after --lock-timeout, even with --force), or one that already holds a
database (records.db) unless --force is given. Then it verifies the backup:
bbolt's consistency check, the expiry index and record counts, and every
record's HMAC with the node secret that signed them: --secret FILE (the copy
of node.secret kept with the backup), else node.secret in the data directory.
A backup that fails any check is refused and nothing is changed.

Then it creates the data directory if it is missing (mode 0700, as dhtd
does), copies the node secret into it as node.secret if it has none (a
different node.secret already there is refused), and copies the backup into
a temporary file there, fsyncs it and renames it to records.db.

What comes back: the records, the peers the node knew (it rejoins through
them) and its undelivered hints, as they were when the backup was taken. Not
in the backup, and not touched: the node's certificate and key (its ID comes
from them), the cluster HMAC keys and the configuration. Records written
since the backup come back from their replicas once the node has rejoined.

Exit codes: 0 restored; 2 a data directory in use, an existing database
without --force, a missing or different node secret, or a backup that is
missing or failed verification.`

// offlineFlags are the flags that compact and restore share.
func offlineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:     "data-dir",
			Usage:    "the stopped node's data `DIR` (holding records.db and node.secret)",
			Required: true,
		},
		&cli.StringFlag{
			Name:  "secret",
			Usage: "the node secret `FILE` that signs the records (default: node.secret in --data-dir)",
		},
		&cli.DurationFlag{
			Name:  "lock-timeout",
			Usage: "how long to wait for a database held by a running node before giving up",
			Value: time.Second,
		},
		&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object, no progress bar"},
	}
}

func compactCommand() *cli.Command {
	return &cli.Command{
		Name:        "compact",
		Usage:       "shrink a stopped node's database: a verified, compacted copy swapped in atomically",
		UsageText:   "dhtctl compact --data-dir DIR [--secret FILE] [--lock-timeout 1s] [--json]",
		Description: compactDescription,
		Flags:       offlineFlags(),
		Action:      runCompact,
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:        "restore",
		Usage:       "make a verified backup the database of a stopped node",
		UsageText:   "dhtctl restore --from BACKUP --data-dir DIR [--secret FILE] [--force] [--lock-timeout 1s] [--json]",
		Description: restoreDescription,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "the backup `FILE` (written by dhtctl backup)", Required: true},
			&cli.BoolFlag{Name: "force", Usage: "replace the database the data directory holds (never one in use)"},
		}, offlineFlags()...),
		Action: runRestore,
	}
}

// offlineConfig reads the shared flags of c.
func offlineConfig(c *cli.Context) (store.OfflineConfig, func()) {
	cfg := store.DefaultOfflineConfig()
	cfg.Timeout = c.Duration("lock-timeout")
	cfg.SecretPath = c.String("secret")
	cfg.Force = c.Bool("force")
	stderr := c.App.ErrWriter
	if c.Bool("json") || !isTerminal(stderr) {
		return cfg, func() {}
	}
	var bar *progressbar.ProgressBar
	cfg.Progress = func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription("verifying records"),
				progressbar.OptionShowCount(),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		if done%256 == 0 || done == total {
			_ = bar.Set64(done) // drawing errors do not matter
		}
	}
	return cfg, func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
}

func runCompact(c *cli.Context) error {
	if c.NArg() > 0 {
		return failf("compact takes no arguments, have %q", c.Args().First())
	}
	dir := c.String("data-dir")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return failf("compact: data directory %s does not exist", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, store.DBFile)); errors.Is(err, fs.ErrNotExist) {
		return failf("compact: no database in %s (%s is missing)", dir, store.DBFile)
	}
	cfg, done := offlineConfig(c)
	if err := cfg.Validate(); err != nil {
		return failf("compact: --lock-timeout must be positive")
	}
	res, err := store.Compact(dir, cfg)
	done()
	if err != nil {
		return failf("%s", offlineError(dir, err))
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, map[string]any{
			"bytes_before": res.BytesBefore, "bytes_after": res.BytesAfter, "records": res.Records,
		})
	}
	fmt.Fprintf(c.App.Writer, "compacted %s: %s (%d bytes) -> %s (%d bytes), %d records verified\n",
		dir, humanBytes(res.BytesBefore), res.BytesBefore, humanBytes(res.BytesAfter), res.BytesAfter, res.Records)
	return nil
}

func runRestore(c *cli.Context) error {
	if c.NArg() > 0 {
		return failf("restore takes no arguments, have %q", c.Args().First())
	}
	from, dir := c.String("from"), c.String("data-dir")
	cfg, done := offlineConfig(c)
	if err := cfg.Validate(); err != nil {
		return failf("restore: --lock-timeout must be positive")
	}
	res, err := store.Restore(from, dir, cfg)
	done()
	if err != nil {
		return failf("%s", offlineError(dir, err))
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, map[string]any{
			"file": from, "data_dir": dir, "bytes": res.Bytes, "records": res.Records,
			"replaced": res.Replaced, "secret_installed": res.SecretInstalled,
		})
	}
	what := "restored"
	if res.Replaced {
		what = "restored (replacing the database it held)"
	}
	fmt.Fprintf(c.App.Writer, "%s %s into %s: %s (%d bytes), %d records verified\n",
		what, from, dir, humanBytes(res.Bytes), res.Bytes, res.Records)
	if res.SecretInstalled {
		fmt.Fprintf(c.App.Writer, "installed the node secret as %s/%s\n", dir, store.SecretFile)
	}
	return nil
}

// offlineError says in one line why compact or restore refused.
func offlineError(dir string, err error) string {
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Sprintf("%s/%s is in use by a running node (stop it first)", dir, store.DBFile)
	case errors.Is(err, store.ErrExists):
		return fmt.Sprintf("%s already holds a database (%s); --force replaces it", dir, store.DBFile)
	case errors.Is(err, store.ErrNoSecret):
		return err.Error() + " (--secret FILE)"
	}
	return err.Error()
}

// humanBytes formats n in binary units: 512 B, 1.5 KiB, 20.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
