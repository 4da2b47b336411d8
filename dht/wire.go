package dht

import (
	"fmt"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// Method names of the calls between nodes.
const (
	methodPut      = "dht.put"
	methodGet      = "dht.get"
	methodStore    = "dht.store"
	methodRange    = "dht.range"
	methodDigest   = "dht.digest"
	methodVersions = "dht.versions"
	methodFetch    = "dht.fetch"
	methodRecheck  = "dht.recheck"
)

// MaxValueBytes is the largest value the client protocol can carry.
const MaxValueBytes = 65495

// wireRecord is a record as it crosses the network. The primary flag does not
// travel: the receiver decides it from its own view of the ring.
type wireRecord struct {
	Key         chord.ID      `json:"key"`
	Value       []byte        `json:"value"`
	Expiry      int64         `json:"expiry"`
	Version     store.Version `json:"version"`
	Replication uint8         `json:"replication"`
}

func toWire(r store.Record) wireRecord {
	return wireRecord{
		Key:         chord.ID(r.Key),
		Value:       r.Value,
		Expiry:      r.Expiry.UnixNano(),
		Version:     r.Version,
		Replication: r.Replication,
	}
}

// record validates w and returns it as a store record.
func (w wireRecord) record(primary bool) (store.Record, error) {
	if len(w.Value) < 1 || len(w.Value) > MaxValueBytes {
		return store.Record{}, fmt.Errorf("%w: value of %d bytes, want 1..%d", ErrInvalid, len(w.Value), MaxValueBytes)
	}
	if w.Replication < 1 {
		return store.Record{}, fmt.Errorf("%w: replication 0", ErrInvalid)
	}
	if w.Version.IsZero() {
		return store.Record{}, fmt.Errorf("%w: no version", ErrInvalid)
	}
	return store.Record{
		Key:         [32]byte(w.Key),
		Value:       w.Value,
		Expiry:      time.Unix(0, w.Expiry),
		Version:     w.Version,
		Primary:     primary,
		Replication: w.Replication,
	}, nil
}

// putArgs are the params of dht.put. Route says that the caller follows a
// referral: a node that does not own the key answers with one (putReply's
// Referral) instead of an error.
type putArgs struct {
	Key         chord.ID `json:"key"`
	Value       []byte   `json:"value"`
	Expiry      int64    `json:"expiry"`
	Replication uint8    `json:"replication"`
	Route       bool     `json:"route,omitempty"`
	// Neighbours asks the owner to tell its neighbours in the reply.
	Neighbours bool `json:"neighbours,omitempty"`
	// HintedAt, set when an entry node delivers a hint, is when it took
	// the PUT (Unix nanoseconds): the owner keeps a version written after
	// that instead.
	HintedAt int64 `json:"hinted_at,omitempty"`
}

type putReply struct {
	Version store.Version `json:"version"`
	// Neighbours, if asked for, are the owner's predecessor and successors.
	Neighbours *chord.Neighbours `json:"neighbours,omitempty"`
	// Referral, set only for a routed put that reached a node that does not
	// own the key: what that node knows of the owner. Version is zero then.
	Referral *chord.Referral `json:"referral,omitempty"`
}

// getArgs are the params of dht.get. Without Route, the receiver answers
// from its store whether it owns the key or holds a replica; with Route, a
// node that does not own the key answers with a referral instead.
type getArgs struct {
	Key   chord.ID `json:"key"`
	Route bool     `json:"route,omitempty"`
	// Neighbours asks the owner to tell its neighbours in the reply.
	Neighbours bool `json:"neighbours,omitempty"`
}

// getReply is the answer to dht.get: the record (with the owner's
// neighbours if asked for), or for a routed get that reached a node that
// does not own the key, a referral alone.
type getReply struct {
	wireRecord
	Neighbours *chord.Neighbours `json:"neighbours,omitempty"`
	Referral   *chord.Referral   `json:"referral,omitempty"`
}

// referralReply is getReply and putReply as a node that does not own the key
// sends them: the referral alone.
type referralReply struct {
	Referral *chord.Referral `json:"referral"`
}

type storeArgs struct {
	Records []wireRecord `json:"records"`
	// Skipped are the sender's suspects (suspect.go): nodes its windows
	// skip, so that the receiver does not count them between the two.
	Skipped []chord.ID `json:"skipped,omitempty"`
}

// storeReply says how many records were stored (a copy older than the one
// held counts as not stored, which is no failure) and which keys were
// refused: a copy this node may not hold from the sender, or a version too
// far ahead of its clock.
type storeReply struct {
	Stored  int        `json:"stored"`
	Refused []chord.ID `json:"refused,omitempty"`
}

type rangeArgs struct {
	From  chord.ID  `json:"from"`
	To    chord.ID  `json:"to"`
	After *chord.ID `json:"after,omitempty"`
	Limit int       `json:"limit"`
}

type rangeReply struct {
	Records []wireRecord `json:"records"`
	Next    *chord.ID    `json:"next,omitempty"`
}

type digestArgs struct {
	From           chord.ID `json:"from"`
	To             chord.ID `json:"to"`
	MinReplication uint8    `json:"min_replication"`
}

type bucketDigest struct {
	Bucket int    `json:"bucket"`
	Count  int    `json:"count"`
	Hash   uint64 `json:"hash"`
}

type digestReply struct {
	Buckets []bucketDigest `json:"buckets"`
	// Skipped are the answering node's suspects, which its windows skip.
	Skipped []chord.ID `json:"skipped,omitempty"`
}

type versionsArgs struct {
	From           chord.ID  `json:"from"`
	To             chord.ID  `json:"to"`
	MinReplication uint8     `json:"min_replication"`
	Buckets        []int     `json:"buckets,omitempty"` // empty: every bucket
	After          *chord.ID `json:"after,omitempty"`
	Limit          int       `json:"limit"`
	// Owner, if set, asks for an answer only from a position that owns
	// both Owner and To: the versions it gives are then those it holds as
	// their owner (a node at several positions keeps one store, so holding
	// a record is not owning it). Otherwise the call fails with ErrNotOwner.
	Owner *chord.ID `json:"owner,omitempty"`
}

type versionEntry struct {
	Key     chord.ID      `json:"key"`
	Version store.Version `json:"version"`
}

type versionsReply struct {
	Entries []versionEntry `json:"entries"`
	Next    *chord.ID      `json:"next,omitempty"`
}

type fetchArgs struct {
	Keys []chord.ID `json:"keys"`
}

type fetchReply struct {
	Records []wireRecord `json:"records"`
	// Rest lists the asked keys left out to keep the reply within its size.
	Rest []chord.ID `json:"rest,omitempty"`
}
