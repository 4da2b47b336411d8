// Package store is the durable record store of a durachord node: one bbolt
// database file (records.db) and the node secret (node.secret) in the data
// directory.
//
// # Files
//
// node.secret holds 32 bytes from crypto/rand, mode 0600, written once
// (through a synced temporary file and a rename) when a new database is
// created. It keys the HMAC of every record, so a record altered on disk is
// detected on read. Losing it makes the database unreadable: Open refuses an
// existing database without it (ErrNoSecret).
//
// # Buckets
//
//	records  key: ring position (32 bytes, SHA-256 of the record key)
//	         value: the record encoding below
//	expiry   key: expiry (8 bytes, big-endian Unix nanoseconds) || position
//	         value: empty. Exactly one entry per record, under the
//	         record's own expiry; the sweeper walks it in expiry order.
//	meta     "schema-version": decimal ASCII, currently 2. A database with a
//	         higher number is refused (ErrSchemaTooNew); version 1 lacks
//	         "record-counts" and is upgraded on a read-write open.
//	         "record-counts": 32 bytes, four big-endian integers: primary
//	         records, replica records, primary value bytes, replica value
//	         bytes (see Record counts).
//	         "probe": 8 bytes, big-endian Unix nanoseconds of the last
//	         Probe's commit.
//	         "node." + key: free-form node state (Meta, SetMeta).
//
// bbolt's freelist (its list of free pages) is written by Close, and by
// every commit while it is small (up to 1024 pages), so that Open reads it
// from its page: a database whose last commit did not write it (a crash
// while it was large) makes bbolt rebuild it at open by walking every page.
//
// # Record encoding (format 1)
//
// All integers are big-endian.
//
//	offset  size  field
//	0       1     format, 1
//	1       1     flags: bit 0 primary (else replica); other bits zero
//	2       1     requested replication count
//	3       8     expiry, Unix nanoseconds, 1 .. 2^63-1
//	11      8     version clock
//	19      8     version node
//	27      32    key
//	59      2     value length n, 1 .. 65495
//	61      n     value
//	61+n    32    HMAC-SHA256(node secret, position || bytes 0 .. 61+n)
//
// The MAC covers every field and binds the record to its position, so a
// record copied to another position fails too. The decoder rejects any
// other format, unknown flags, an out-of-range expiry or length, and any
// total size other than 93+n.
//
// # Writes
//
// Put, Delete and SetPrimary go through one commit goroutine (group commit):
// when a write arrives and no commit runs, it is committed at once; writes
// arriving meanwhile wait and go together (up to Config.MaxBatch) in the
// next bbolt transaction. Each caller gets its own result after the
// transaction is fsynced. Put keeps the newer version (Version.Compare) and
// reports whether it stored. A record whose HMAC fails is treated as absent
// (and counted) by reads and may be replaced by any put.
//
// # Record counts
//
// Stats reads "record-counts": one key, whatever the size of the database,
// so status pages and metrics never walk the records. The counts cover
// every stored record, by its primary flag, expired ones included until the
// sweeper deletes them; a value whose header does not read (bytes altered
// outside the store) counts nowhere. They are kept exact by changing them
// only in the transaction that changes the records: each write of a group
// commit, and each sweep transaction, adds what it removes (the old record,
// read in the same transaction) and what it stores to a delta, and the
// transaction ends by adding the delta to the key. A commit that fails rolls
// both back; a crash leaves both as of the last commit. A version 1
// database is counted once, by one walk, in the transaction that saves the
// counts and version 2; read-only, it is recounted on every Stats instead.
// Check compares the counts with a recount.
//
// # Reads
//
// Get and Range never return an expired or tampered record. Values are
// copied out of bbolt before a transaction ends, and callbacks run outside
// transactions. Sweep deletes expired records in bounded transactions.
package store
