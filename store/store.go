package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// File names inside the data directory.
const (
	DBFile     = "records.db"
	SecretFile = "node.secret"
	secretSize = 32
)

// SchemaVersion is the database schema this program writes. It reads
// version 1 too (a database without record counts), and upgrades it on the
// first read-write open.
const SchemaVersion = 2

// Bucket and meta key names, as specified in doc.go.
var (
	bucketRecords = []byte("records")
	bucketExpiry  = []byte("expiry")
	bucketMeta    = []byte("meta")
	metaSchema    = []byte("schema-version")
	metaCounts    = []byte("record-counts")
	metaUserPre   = "node."
)

// readChunk is how many records one read transaction of Range or ForEach
// collects before the callback sees them outside the transaction.
const readChunk = 256

// Store is a durable record store on one bbolt file. Its methods are safe for
// concurrent use.
type Store struct {
	db       *bolt.DB
	dir      string
	cfg      Config
	log      hclog.Logger
	now      func() time.Time
	secret   []byte     // nil only when opened read-only without node.secret
	key      *recordKey // the secret's HMAC states; nil with secret
	metrics  *metrics
	tampered atomic.Uint64
	hints    hintState
	// freelistSyncMax is the constant of that name, held here so that a
	// benchmark can raise it before writing.
	freelistSyncMax int

	// mu guards closed and sends on ops: a writer holds it shared while it
	// enqueues, Close holds it exclusively to close ops.
	mu     sync.RWMutex
	closed bool
	ops    chan *op
	done   chan struct{} // closed when the commit loop has returned

	closeOnce sync.Once
	closeErr  error

	probing atomic.Bool    // a Probe's goroutine runs
	probes  sync.WaitGroup // the Probe goroutine; Close waits for it
}

// Open opens (creating unless cfg.ReadOnly) the store in dir: the database
// file records.db and the node secret node.secret (32 random bytes, mode
// 0600). With cfg.ReadOnly, dir may also name a database file itself (a
// backup); its secret is then cfg.SecretPath, or node.secret beside it. It
// fails with ErrLocked when another process holds the database for longer
// than cfg.Timeout, and with ErrSchemaTooNew when the database was written by
// a newer program.
func Open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, cfg: cfg, log: cfg.Logger, now: cfg.Now, metrics: m, freelistSyncMax: freelistSyncMax}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	path := filepath.Join(dir, DBFile)
	if fi, err := os.Stat(dir); err == nil && fi.Mode().IsRegular() && cfg.ReadOnly {
		path, s.dir = dir, filepath.Dir(dir)
	}
	if cfg.ReadOnly {
		// bbolt would create nothing, but report a clear error first.
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Whether a commit writes bbolt's freelist is decided per transaction
	// (update); Close always writes it.
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        cfg.Timeout,
		ReadOnly:       cfg.ReadOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (lock not acquired within %s)", path, ErrLocked, cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.db = db
	if err := s.init(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if !cfg.ReadOnly {
		s.removeSnapshots()
		s.ops = make(chan *op, cfg.MaxBatch)
		s.done = make(chan struct{})
		go s.commitLoop()
	}
	s.log.Info("store opened", "path", path, "read-only", cfg.ReadOnly)
	return s, nil
}

// init loads or creates the secret and checks or creates the schema. The
// secret comes first so that a crash between the two never leaves a
// database without its secret.
func (s *Store) init() error {
	var exists bool
	var schema uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		exists = true
		v, err := strconv.ParseUint(string(meta.Get(metaSchema)), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: bad schema version %q", ErrNotDatabase, meta.Get(metaSchema))
		}
		schema = v
		return nil
	})
	if err != nil {
		return err
	}
	if schema > SchemaVersion {
		return fmt.Errorf("%w: database schema version %d, this program supports up to %d", ErrSchemaTooNew, schema, SchemaVersion)
	}
	secret, err := s.loadSecret(exists)
	if err != nil {
		return err
	}
	s.secret = secret
	if secret != nil {
		s.key = newRecordKey(secret)
	}
	if s.cfg.ReadOnly {
		if !exists {
			return fmt.Errorf("%w: %s has no schema", ErrNotDatabase, s.db.Path())
		}
		return s.db.View(func(tx *bolt.Tx) error { s.countHints(tx); return nil })
	}
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketExpiry, bucketMeta, bucketHints} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		s.countHints(tx)
		return s.upgrade(tx, exists, schema)
	})
}

// upgrade brings the schema of a read-write database to SchemaVersion in
// tx: a new one gets zero counts, one without counts (version 1) gets them
// from a single walk over its records, the only one this program makes
// outside Check.
func (s *Store) upgrade(tx *bolt.Tx, exists bool, schema uint64) error {
	meta := tx.Bucket(bucketMeta)
	_, ok, err := storedCounts(tx)
	if err != nil {
		return err
	}
	if !ok {
		var st Stats
		if exists {
			start := time.Now()
			st = recount(tx)
			s.log.Info("record counts computed", "from-schema", schema,
				"primary", st.PrimaryRecords, "replica", st.ReplicaRecords, "took", time.Since(start))
		}
		if err := meta.Put(metaCounts, st.encode()); err != nil {
			return err
		}
	}
	if exists && schema == SchemaVersion {
		return nil
	}
	return meta.Put(metaSchema, []byte(strconv.Itoa(SchemaVersion)))
}

// loadSecret reads node.secret, creating it (crypto/rand, 0600, atomically)
// for a new read-write database. A read-only open without it returns nil.
func (s *Store) loadSecret(dbExists bool) ([]byte, error) {
	path := s.cfg.SecretPath
	if path == "" {
		path = filepath.Join(s.dir, SecretFile)
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != secretSize {
			return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrNoSecret, path, len(b), secretSize)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read node secret: %w", err)
	case s.cfg.ReadOnly:
		return nil, nil
	case dbExists:
		return nil, fmt.Errorf("%w: %s is gone but the database holds records signed with it; restore it or remove %s", ErrNoSecret, path, DBFile)
	}
	b = make([]byte, secretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make node secret: %w", err)
	}
	if err := writeFileSync(path, b); err != nil {
		return nil, fmt.Errorf("write node secret: %w", err)
	}
	s.log.Info("node secret created", "path", path)
	return b, nil
}

// writeFileSync writes data to path with mode 0600 through a synced temporary
// file and a rename, then syncs the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return syncDir(filepath.Dir(path))
}

// freelistSyncMax is the most free pages for which a commit also writes
// bbolt's freelist (8 bytes a page: at most 3 pages more to write). A
// database whose last commit wrote its freelist opens by reading it from
// its page; one whose last commit did not makes bbolt rebuild it by
// walking every page of the file. Above this size, writing the list would
// cost each commit more than that walk costs one open (after a mass expiry,
// tens of thousands of free pages cut put throughput several times), so
// commits leave it out and only Close writes it.
const freelistSyncMax = 1024

// update runs fn in a write transaction, which writes the freelist too
// while it is small (freelistSyncMax). bbolt reads NoFreelistSync only in
// Commit, under the writer lock that fn runs under as well.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		st := s.db.Stats()
		s.db.NoFreelistSync = st.FreePageN+st.PendingPageN > s.freelistSyncMax
		return fn(tx)
	})
}

// Close waits for queued writes to commit, writes the freelist so that the
// next Open need not walk the file, then closes the database. It is
// idempotent; writes after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.ops != nil {
			close(s.ops)
		}
		s.mu.Unlock()
		if s.done != nil {
			<-s.done
		}
		var syncErr error
		if !s.cfg.ReadOnly {
			// No other writer is left: the last commit writes the freelist.
			syncErr = s.db.Update(func(*bolt.Tx) error {
				s.db.NoFreelistSync = false
				return nil
			})
			if syncErr != nil {
				syncErr = fmt.Errorf("close store: write freelist: %w", syncErr)
			}
		}
		path := s.db.Path() // empty once the database is closed
		s.closeErr = errors.Join(syncErr, s.db.Close())
		s.probes.Wait() // its read or commit has ended with the database
		s.log.Info("store closed", "path", path)
	})
	return s.closeErr
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Verifies reports whether the store holds the node secret and so can check
// record HMACs (false only for a read-only open without node.secret).
func (s *Store) Verifies() bool { return s.secret != nil }

// TamperedCount returns how many times a record was found failing its
// integrity check since Open.
func (s *Store) TamperedCount() uint64 { return s.tampered.Load() }

func (s *Store) countTampered(pos Position, err error) {
	s.tampered.Add(1)
	s.metrics.tampered.Inc()
	s.log.Warn("tampered record", "position", fmt.Sprintf("%x", pos), "error", err)
}

// view runs fn in a read transaction, mapping a closed database to ErrClosed.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Get returns the live record for key. It fails with ErrNotFound when the
// record is absent, expired, or fails its HMAC (then the error also matches
// ErrTampered and the event is counted).
func (s *Store) Get(key [32]byte) (Record, error) {
	if s.secret == nil {
		return Record{}, ErrNoSecret
	}
	pos := PositionOf(key)
	var r Record
	found := false
	var oerr error
	err := s.view(func(tx *bolt.Tx) error {
		// Opened in place: openRecord copies the value out of the page.
		if v := tx.Bucket(bucketRecords).Get(pos[:]); v != nil {
			found = true
			r, oerr = openRecord(s.key, pos, v)
		}
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	if !found {
		return Record{}, fmt.Errorf("get %x: %w", key, ErrNotFound)
	}
	if err := oerr; err != nil {
		s.countTampered(pos, err)
		return Record{}, fmt.Errorf("get %x: %w (%w)", key, ErrNotFound, err)
	}
	if r.Expired(s.now()) {
		return Record{}, fmt.Errorf("get %x: %w (expired)", key, ErrNotFound)
	}
	return r, nil
}

// Meta returns the value stored under key by SetMeta, or nil, nil.
func (s *Store) Meta(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty meta key", ErrInvalidArgument)
	}
	var v []byte
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get([]byte(metaUserPre + key)); b != nil {
			v = bytes.Clone(b)
		}
		return nil
	})
	return v, err
}

// SetMeta durably stores value under key (free-form node state such as the
// last successor list); a nil value deletes the key.
func (s *Store) SetMeta(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("%w: empty meta key", ErrInvalidArgument)
	}
	if s.cfg.ReadOnly {
		return ErrReadOnly
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if value == nil {
			return b.Delete([]byte(metaUserPre + key))
		}
		return b.Put([]byte(metaUserPre+key), value)
	})
}

// WriteTo writes a consistent copy of the database file to w (a backup).
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	return s.Backup(w, nil)
}

// backupChunk is how much of a snapshot Backup hands to its writer at once.
const backupChunk = 32 << 10

// Backup writes a consistent copy of the database to w while writes go on.
// size, if not nil, is called with the copy's length in bytes before
// anything is written. The copy is made in one read transaction into an
// unlinked temporary file in the data directory (snapshot) and streamed
// from there in chunks of 32 KiB, so however slowly w takes it, no
// transaction stays open meanwhile: a commit that must grow the database's
// memory map waits for open read transactions, and would otherwise wait for
// w. A store opened read-only has no commits to hold up: it streams from the
// transaction.
func (s *Store) Backup(w io.Writer, size func(int64)) (int64, error) {
	if s.cfg.ReadOnly {
		var n int64
		err := s.view(func(tx *bolt.Tx) error {
			if size != nil {
				size(tx.Size())
			}
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	}
	f, total, err := s.snapshot()
	if err != nil {
		return 0, err
	}
	defer f.Close() // read-only and unlinked: closing frees it, nothing to lose
	if size != nil {
		size(total)
	}
	buf := make([]byte, backupChunk)
	var n int64
	for n < total {
		m, err := io.ReadFull(f, buf[:min(int64(len(buf)), total-n)])
		if err != nil {
			return n, fmt.Errorf("backup: read snapshot: %w", err)
		}
		m, err = w.Write(buf[:m])
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// snapshotPattern names the temporary files of snapshot; Open removes any
// left by a crash (removeSnapshots), as it does those of Compact and Restore.
const snapshotPattern = ".backup-*.tmp"

// snapshot copies the database, in one read transaction, into a new file in
// the data directory that is unlinked at once (it lives until the returned
// handle is closed), and returns it positioned at its start, with its size.
func (s *Store) snapshot() (*os.File, int64, error) {
	f, err := os.CreateTemp(s.dir, snapshotPattern)
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		return nil, 0, errors.Join(fmt.Errorf("backup: %w", err), f.Close())
	}
	var n int64
	err = s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(f)
		return err
	})
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("backup: copy to %s: %w", s.dir, err), f.Close())
	}
	return f, n, nil
}

// removeSnapshots deletes the temporary files a crash left behind: those of
// snapshot (which unlinks its file right after creating it, so only a crash
// in between leaves one), Compact and Restore.
func (s *Store) removeSnapshots() {
	var left []string
	for _, pattern := range []string{snapshotPattern, compactPattern, restorePattern} {
		m, _ := filepath.Glob(filepath.Join(s.dir, pattern)) // the patterns are valid
		left = append(left, m...)
	}
	for _, p := range left {
		if err := os.Remove(p); err != nil {
			s.log.Warn("left-over backup file not removed", "path", p, "error", err)
		}
	}
}

// Check verifies the database: bbolt's page consistency check, that the
// expiry index and the records match one to one (every record has exactly one
// index entry, under its own expiry, and every index entry has its record),
// and that the kept record counts equal a recount. It does not check HMACs;
// ForEach reports those.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) >= 10 {
				break
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt consistency check: %w", errors.Join(errs...))
		}
		if err := checkIndex(tx); err != nil {
			return err
		}
		return checkCounts(tx)
	})
}

// checkCounts compares the kept record counts with a recount. A database of
// schema version 1 (read-only open) has none to compare.
func checkCounts(tx *bolt.Tx) error {
	kept, ok, err := storedCounts(tx)
	if err != nil || !ok {
		return err
	}
	if got := recount(tx); kept != got {
		return fmt.Errorf("record counts %+v, but the records are %+v", kept, got)
	}
	return nil
}

func checkIndex(tx *bolt.Tx) error {
	records, index := tx.Bucket(bucketRecords), tx.Bucket(bucketExpiry)
	var nrec, nidx int
	err := records.ForEach(func(k, v []byte) error {
		nrec++
		exp, ok := rawExpiry(v)
		if !ok || len(k) != 32 {
			return fmt.Errorf("record %x: malformed (%d-byte key, %d-byte value)", k, len(k), len(v))
		}
		if c := index.Cursor(); !keyExists(c, indexKey(exp, Position(k))) {
			return fmt.Errorf("record %x: no expiry index entry", k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = index.ForEach(func(k, _ []byte) error {
		nidx++
		if len(k) != 40 {
			return fmt.Errorf("expiry index entry %x: malformed", k)
		}
		v := records.Get(k[8:])
		if v == nil {
			return fmt.Errorf("expiry index entry %x: no record", k)
		}
		if exp, _ := rawExpiry(v); !bytes.Equal(indexKey(exp, Position(k[8:])), k) {
			return fmt.Errorf("expiry index entry %x: record has expiry %d", k, exp)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if nrec != nidx {
		return fmt.Errorf("%d records but %d expiry index entries", nrec, nidx)
	}
	return nil
}

func keyExists(c *bolt.Cursor, key []byte) bool {
	k, _ := c.Seek(key)
	return k != nil && bytes.Equal(k, key)
}

// Sweep deletes the records expired at now, at most maxPerTx per write
// transaction (0 or less means 1000), and returns how many it deleted. It
// collects candidates from the expiry index in a read transaction and deletes
// them in a separate write transaction, re-checking each.
func (s *Store) Sweep(ctx context.Context, now time.Time, maxPerTx int) (int, error) {
	if s.cfg.ReadOnly {
		return 0, ErrReadOnly
	}
	if maxPerTx <= 0 {
		maxPerTx = 1000
	}
	limit := uint64(now.UnixNano())
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var batch [][]byte
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketExpiry).Cursor()
			for k, _ := c.First(); k != nil && len(batch) < maxPerTx; k, _ = c.Next() {
				if len(k) == 40 && binary.BigEndian.Uint64(k[:8]) > limit {
					break
				}
				batch = append(batch, bytes.Clone(k))
			}
			return nil
		})
		if err != nil || len(batch) == 0 {
			return total, err
		}
		n, err := s.deleteExpired(batch)
		total += n
		s.metrics.swept.Add(float64(n))
		if err != nil {
			return total, err
		}
		if len(batch) < maxPerTx {
			return total, nil
		}
	}
}

func (s *Store) deleteExpired(batch [][]byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		var delta Stats
		records, index := tx.Bucket(bucketRecords), tx.Bucket(bucketExpiry)
		for _, ik := range batch {
			if len(ik) != 40 {
				if err := index.Delete(ik); err != nil {
					return err
				}
				continue
			}
			pos := ik[8:]
			if v := records.Get(pos); v != nil {
				exp, _ := rawExpiry(v)
				if !bytes.Equal(indexKey(exp, Position(pos)), ik) {
					continue // overwritten since the scan; its index entry is another
				}
				delta.count(v, -1)
				if err := records.Delete(pos); err != nil {
					return err
				}
				n++
			}
			if err := index.Delete(ik); err != nil {
				return err
			}
		}
		return addCounts(tx, delta)
	})
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	return n, nil
}
