package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Stats counts stored records and their value bytes, by kind.
type Stats struct {
	PrimaryRecords int64 `json:"primary_records"`
	ReplicaRecords int64 `json:"replica_records"`
	PrimaryBytes   int64 `json:"primary_bytes"`
	ReplicaBytes   int64 `json:"replica_bytes"`
}

// countsSize is the length of the meta "record-counts" value: four
// big-endian uint64, in the order of the Stats fields.
const countsSize = 32

// count adds (sign 1) or removes (sign -1) the stored record v. A value
// whose header does not read (only bytes altered outside the store) counts
// nowhere, both here and in a recount.
func (st *Stats) count(v []byte, sign int64) {
	primary, size, _, ok := rawHeader(v)
	if !ok {
		return
	}
	if primary {
		st.PrimaryRecords += sign
		st.PrimaryBytes += sign * int64(size)
	} else {
		st.ReplicaRecords += sign
		st.ReplicaBytes += sign * int64(size)
	}
}

func (st *Stats) add(d Stats) {
	st.PrimaryRecords += d.PrimaryRecords
	st.ReplicaRecords += d.ReplicaRecords
	st.PrimaryBytes += d.PrimaryBytes
	st.ReplicaBytes += d.ReplicaBytes
}

func (st Stats) encode() []byte {
	b := make([]byte, 0, countsSize)
	for _, n := range []int64{st.PrimaryRecords, st.ReplicaRecords, st.PrimaryBytes, st.ReplicaBytes} {
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}

func decodeCounts(b []byte) (Stats, error) {
	if len(b) != countsSize {
		return Stats{}, fmt.Errorf("%w: record counts are %d bytes, want %d", ErrNotDatabase, len(b), countsSize)
	}
	n := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }
	return Stats{PrimaryRecords: n(0), ReplicaRecords: n(1), PrimaryBytes: n(2), ReplicaBytes: n(3)}, nil
}

// storedCounts reads the counts kept in tx's meta bucket; ok is false when
// the database has none (written by schema version 1).
func storedCounts(tx *bolt.Tx) (st Stats, ok bool, err error) {
	b := tx.Bucket(bucketMeta).Get(metaCounts)
	if b == nil {
		return Stats{}, false, nil
	}
	st, err = decodeCounts(b)
	return st, err == nil, err
}

// addCounts adds d to the counts kept in tx, in the same transaction as the
// writes d describes.
func addCounts(tx *bolt.Tx, d Stats) error {
	if d == (Stats{}) {
		return nil
	}
	st, _, err := storedCounts(tx)
	if err != nil {
		return err
	}
	st.add(d)
	return tx.Bucket(bucketMeta).Put(metaCounts, st.encode())
}

// recount counts every stored record of tx: the full walk that the kept
// counts spare every other caller.
func recount(tx *bolt.Tx) Stats {
	var st Stats
	c := tx.Bucket(bucketRecords).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		st.count(v, 1)
	}
	return st
}

// Stats returns the records the store holds by kind, and their value bytes:
// every stored record, including expired ones until the sweeper deletes
// them. The counts are kept in the database and updated in the transaction
// of every write, so this reads one key. Only a read-only open of a
// database written before schema version 2 has none; then it walks every
// record.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		if st, ok, err = storedCounts(tx); err != nil || ok {
			return err
		}
		st = recount(tx)
		return nil
	})
	return st, err
}
