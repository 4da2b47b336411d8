package store

import "errors"

// Sentinel errors. Compare with errors.Is; returned errors wrap these with
// context.
var (
	// ErrNotFound: no live record for the key (absent, expired, or its
	// HMAC failed; in the last case the error also matches ErrTampered).
	ErrNotFound = errors.New("store: record not found")
	// ErrTampered: a stored record failed its HMAC or could not be decoded.
	ErrTampered = errors.New("store: record failed its integrity check")
	// ErrLocked: another process (a running node) holds the database.
	ErrLocked = errors.New("store: database is in use by a running node")
	// ErrSchemaTooNew: the database was written by a newer program.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this program supports")
	// ErrNotDatabase: the file is not a durachord record database.
	ErrNotDatabase = errors.New("store: not a durachord database")
	// ErrInvalidRecord: a record handed to Put is malformed (value size,
	// expiry), or bytes handed to the decoder are not a record.
	ErrInvalidRecord = errors.New("store: invalid record")
	// ErrInvalidArgument: a bad argument other than a record (a resume
	// position outside the arc, an empty meta key).
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly: a write on a store opened read-only.
	ErrReadOnly = errors.New("store: opened read-only")
	// ErrStalled: Probe did not see a read and a commit finish in time.
	ErrStalled = errors.New("store: read or commit stalled")
	// ErrNoSecret: the node secret is missing, so records cannot be
	// verified (read-only open without node.secret), or an existing
	// database was opened without its secret.
	ErrNoSecret = errors.New("store: node secret missing")
	// ErrExists: Restore into a data directory that already holds a
	// database, without Force.
	ErrExists = errors.New("store: the data directory already holds a database")
	// ErrCorrupt: a database failed verification (Compact's copy, Restore's
	// backup): bbolt's consistency check, the store's invariants, or a
	// record's HMAC.
	ErrCorrupt = errors.New("store: database failed verification")
)
