package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// OfflineConfig configures Compact and Restore, which work on the data
// directory of a stopped node. The zero value is not valid; start from
// DefaultOfflineConfig.
type OfflineConfig struct {
	// Timeout is how long to wait for the database file lock before failing
	// with ErrLocked (a running node holds it). Default 1s.
	Timeout time.Duration
	// SecretPath is the node secret that signs the records. Default "":
	// node.secret in the data directory. Restore installs it there when the
	// directory has none.
	SecretPath string
	// Force lets Restore replace the database a data directory already
	// holds (never one in use). Compact ignores it. Default false.
	Force bool
	// Progress, if not nil, is called while records are verified with how
	// many have been checked and how many there are. Default nil.
	Progress func(done, total int64)
}

// DefaultOfflineConfig returns the defaults documented on OfflineConfig.
func DefaultOfflineConfig() OfflineConfig {
	return OfflineConfig{Timeout: time.Second}
}

// Validate reports the first invalid field.
func (c OfflineConfig) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: lock timeout %s must be positive", ErrInvalidArgument, c.Timeout)
	}
	return nil
}

// compactTxMaxSize is how many bytes of the copy one transaction of Compact
// writes before it commits and starts the next.
const compactTxMaxSize = 64 << 20

// Temporary files of Compact and Restore, in the data directory.
const (
	compactPattern = ".compact-*.tmp"
	restorePattern = ".restore-*.tmp"
)

// CompactResult is what Compact did.
type CompactResult struct {
	// BytesBefore and BytesAfter are the sizes of records.db before and
	// after.
	BytesBefore, BytesAfter int64
	// Records is how many records the compacted database holds, every one
	// verified.
	Records int64
}

// Compact rewrites records.db in dir, whose node must be stopped, without
// its free pages. It holds the database's lock throughout (ErrLocked if a
// running node holds it), copies it with bbolt's compaction into a temporary
// file beside it, and verifies the copy: bbolt's consistency check, the
// store's invariants (Check: the expiry index, and the record counts, copied
// from the original, against a recount), and every record's HMAC with the
// node secret. Only then does it fsync the copy, rename
// it over records.db and fsync the directory. On any failure before the
// rename, records.db is as it was and the temporary file is removed; a
// copy that fails verification fails with ErrCorrupt.
func Compact(dir string, cfg OfflineConfig) (CompactResult, error) {
	var res CompactResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	path := filepath.Join(dir, DBFile)
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	res.BytesBefore = fi.Size()
	secret := secretPath(dir, cfg)
	if _, err := os.Stat(secret); err != nil {
		return res, fmt.Errorf("compact: %w: %s is needed to verify the records: %w", ErrNoSecret, secret, err)
	}
	src, err := lockDB(path, cfg.Timeout)
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	defer src.Close() // read only: its lock is all it holds

	tmp, err := tempFile(dir, compactPattern)
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			os.Remove(tmp) // best effort: the original is untouched either way
		}
	}()
	if err := compactInto(tmp, src, cfg.Timeout); err != nil {
		return res, fmt.Errorf("compact into %s: %w", tmp, err)
	}
	if err := ownLike(tmp, fi); err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	n, err := verifyFile(tmp, secret, cfg)
	if err != nil {
		return res, fmt.Errorf("compact: the copy: %w", err)
	}
	res.Records = n
	if err := os.Rename(tmp, path); err != nil {
		return res, fmt.Errorf("compact: swap in the copy: %w", err)
	}
	swapped = true
	if err := syncDir(dir); err != nil {
		return res, fmt.Errorf("compact: the copy is in place but the directory sync failed: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		res.BytesAfter = fi.Size()
	}
	return res, nil
}

// compactInto copies src into a new database at path with bbolt's
// compaction, unsynced, then fsyncs the file once.
func compactInto(path string, src *bolt.DB, timeout time.Duration) error {
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: true})
	if err != nil {
		return err
	}
	err = bolt.Compact(dst, src, compactTxMaxSize)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncFile(path)
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	// Bytes is the size of the restored records.db.
	Bytes int64
	// Records is how many records it holds, every one verified.
	Records int64
	// Replaced is set when a database the directory held was replaced.
	Replaced bool
	// SecretInstalled is set when the node secret was copied into the
	// directory (it had none).
	SecretInstalled bool
}

// Restore makes the backup file the database of the data directory dir,
// whose node must be stopped. It refuses a directory whose database is in
// use (ErrLocked, even with cfg.Force) or that holds a database (ErrExists,
// unless cfg.Force). It verifies the backup as Compact verifies its copy
// (ErrCorrupt) with the node secret (cfg.SecretPath, else node.secret in
// dir); then it creates dir if needed (mode 0700, as dhtd does), installs
// the secret there if dir has none (refusing one that differs), copies the
// backup into a temporary file, fsyncs it, renames it to records.db and
// fsyncs the directory. On any failure the directory's database is as it
// was.
func Restore(backup, dir string, cfg OfflineConfig) (RestoreResult, error) {
	var res RestoreResult
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	bfi, err := os.Stat(backup)
	if err != nil {
		return res, fmt.Errorf("restore: backup: %w", err)
	}
	if !bfi.Mode().IsRegular() {
		return res, fmt.Errorf("restore: %w: backup %s is not a file", ErrInvalidArgument, backup)
	}
	path := filepath.Join(dir, DBFile)
	if fi, err := os.Stat(path); err == nil {
		if os.SameFile(fi, bfi) {
			return res, fmt.Errorf("restore: %w: %s is the data directory's own database", ErrInvalidArgument, backup)
		}
		// An empty file is no database (bbolt's open would write one).
		if fi.Size() > 0 {
			held, err := lockDB(path, cfg.Timeout)
			if errors.Is(err, ErrLocked) {
				return res, fmt.Errorf("restore: %w", err)
			}
			// Any other error: not a database a node could have open.
			if held != nil {
				defer held.Close() // read only: its lock is all it holds
			}
		}
		if !cfg.Force {
			return res, fmt.Errorf("restore: %w: %s", ErrExists, path)
		}
		res.Replaced = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("restore: %w", err)
	}

	secret, install, err := restoreSecret(dir, cfg)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	n, err := verifyFile(backup, secretPath(dir, cfg), cfg)
	if err != nil {
		return res, fmt.Errorf("restore: backup %s: %w", backup, err)
	}
	res.Records = n

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if install {
		// The secret first, as Open writes it: a database is never left
		// without the secret its records are signed with.
		if err := writeFileSync(filepath.Join(dir, SecretFile), secret); err != nil {
			return res, fmt.Errorf("restore: install node secret: %w", err)
		}
		res.SecretInstalled = true
	}
	tmp, err := tempFile(dir, restorePattern)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if res.Bytes, err = copyFileSync(tmp, backup); err != nil {
		return res, errors.Join(fmt.Errorf("restore: copy %s: %w", backup, err), os.Remove(tmp))
	}
	// The node runs as the owner of its data directory: what restore wrote
	// is that user's (when restore runs as root), or the node could not
	// open it.
	if dfi, err := os.Stat(dir); err == nil {
		for _, f := range []string{tmp, filepath.Join(dir, SecretFile)} {
			if err := ownLike(f, dfi); err != nil {
				return res, errors.Join(fmt.Errorf("restore: %w", err), os.Remove(tmp))
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, errors.Join(fmt.Errorf("restore: %w", err), os.Remove(tmp))
	}
	if err := syncDir(dir); err != nil {
		return res, fmt.Errorf("restore: the database is in place but the directory sync failed: %w", err)
	}
	return res, nil
}

// restoreSecret returns the node secret that must verify the backup, and
// whether it is to be installed in dir (dir has none). A secret in dir that
// differs from cfg.SecretPath's is refused: its records, or a later
// database, are signed with it.
func restoreSecret(dir string, cfg OfflineConfig) ([]byte, bool, error) {
	own := filepath.Join(dir, SecretFile)
	ownB, ownErr := os.ReadFile(own)
	if ownErr != nil && !errors.Is(ownErr, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read node secret: %w", ownErr)
	}
	if cfg.SecretPath == "" {
		if ownErr != nil {
			return nil, false, fmt.Errorf("%w: %s does not exist; name the node secret the backup's records are signed with", ErrNoSecret, own)
		}
		return ownB, false, nil
	}
	b, err := os.ReadFile(cfg.SecretPath)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrNoSecret, err)
	}
	if len(b) != secretSize {
		return nil, false, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrNoSecret, cfg.SecretPath, len(b), secretSize)
	}
	if ownErr == nil && !bytes.Equal(ownB, b) {
		return nil, false, fmt.Errorf("%w: %s differs from %s; remove it first if it belongs to no database you keep", ErrInvalidArgument, own, cfg.SecretPath)
	}
	return b, ownErr != nil, nil
}

// verifyFile opens the database file path read-only with the node secret
// secret ("" for node.secret beside it) and checks it: bbolt's consistency
// check and the store's invariants (Check), then every record's HMAC. It
// returns how many records it holds; a failed check is ErrCorrupt.
func verifyFile(path, secret string, cfg OfflineConfig) (int64, error) {
	scfg := DefaultConfig()
	scfg.ReadOnly = true
	scfg.Timeout = cfg.Timeout
	scfg.SecretPath = secret
	s, err := Open(path, scfg)
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, ErrNotDatabase) {
		return 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return 0, err
	}
	n, err := verifyStore(s, cfg.Progress)
	return n, errors.Join(err, s.Close())
}

func verifyStore(s *Store, progress func(done, total int64)) (int64, error) {
	if !s.Verifies() {
		return 0, fmt.Errorf("%w: cannot verify the records' HMACs", ErrNoSecret)
	}
	if err := s.Check(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	st, err := s.Stats()
	if err != nil {
		return 0, err
	}
	total := st.PrimaryRecords + st.ReplicaRecords
	var n, bad int64
	var first error
	err = s.ForEach(func(e Entry) error {
		n++
		if e.Tampered {
			bad++
			if first == nil {
				first = fmt.Errorf("record at position %x: %w", e.Position, e.Err)
			}
		}
		if progress != nil {
			progress(n, max(n, total))
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if bad > 0 {
		return n, fmt.Errorf("%w: %d of %d records fail their integrity check (first: %w)", ErrCorrupt, bad, n, first)
	}
	return n, nil
}

// lockDB opens the database at path read-write to hold its exclusive lock,
// the one a running node holds, and nothing else: callers only read through
// it, and with NoFreelistSync bbolt's open writes nothing either. A lock not
// acquired within timeout is ErrLocked.
func lockDB(path string, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w (lock not acquired within %s)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func secretPath(dir string, cfg OfflineConfig) string {
	if cfg.SecretPath != "" {
		return cfg.SecretPath
	}
	return filepath.Join(dir, SecretFile)
}

// tempFile creates an empty file (mode 0600) in dir and returns its name.
// ownLike gives path the owner and group of like when this process runs as
// root (an operator's sudo), so that the node's user can open what a
// command wrote in its data directory; otherwise the files are already the
// caller's, as the node's own are.
func ownLike(path string, like fs.FileInfo) error {
	st, ok := like.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", path, st.Uid, err)
	}
	return nil
}

func tempFile(dir, pattern string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// copyFileSync copies src over dst and fsyncs dst.
func copyFileSync(dst, src string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close() // read only
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	return n, errors.Join(err, out.Close())
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
