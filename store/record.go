package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"sync"
	"time"
)

// Position is a ring position: the SHA-256 of a record's key, big-endian.
// It has the same layout as chord.ID; the store does not import chord.
type Position = [32]byte

// PositionOf returns the ring position of a 32-byte key.
func PositionOf(key [32]byte) Position { return sha256.Sum256(key[:]) }

// Version orders writes of one key: by Clock, then by Node. The owner of a
// key assigns it; every replica compares versions the same way.
type Version struct {
	Clock uint64 `json:"clock"`
	Node  uint64 `json:"node"`
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.Clock < o.Clock:
		return -1
	case v.Clock > o.Clock:
		return 1
	case v.Node < o.Node:
		return -1
	case v.Node > o.Node:
		return 1
	}
	return 0
}

// IsZero reports whether v is the zero version (older than every other).
func (v Version) IsZero() bool { return v == Version{} }

// String formats v as "clock.node".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Clock, v.Node) }

// Value size limits. The upper limit is what fits in one client PUT message
// (65535 - 40 header bytes).
const (
	MinValueSize = 1
	MaxValueSize = 65495
)

// Record is one stored key/value with its metadata.
type Record struct {
	// Key is the client's key; the ring position is PositionOf(Key).
	Key [32]byte
	// Value is 1..MaxValueSize bytes.
	Value []byte
	// Expiry is the absolute expiry time; the record is not returned at or
	// after it.
	Expiry time.Time
	// Version orders writes of the same key; newer wins.
	Version Version
	// Primary marks the owner's copy; false means a replica.
	Primary bool
	// Replication is the requested replication count, kept as received.
	Replication uint8
}

// Position returns the record's ring position.
func (r Record) Position() Position { return PositionOf(r.Key) }

// Expired reports whether the record is expired at now.
func (r Record) Expired(now time.Time) bool { return !now.Before(r.Expiry) }

// Encoding, as specified in doc.go.
const (
	recordFormat   = 1
	recordHeader   = 61 // format .. value length
	recordMACSize  = sha256.Size
	recordOverhead = recordHeader + recordMACSize
	flagPrimary    = 0x01
	// maxExpiryNanos bounds expiry to what an int64 of Unix nanoseconds
	// holds (year 2262).
	maxExpiryNanos = math.MaxInt64
)

// validate checks the fields Put needs; it does not look at the version.
func (r Record) validate() error {
	if n := len(r.Value); n < MinValueSize || n > MaxValueSize {
		return fmt.Errorf("%w: value size %d not in [%d, %d]", ErrInvalidRecord, n, MinValueSize, MaxValueSize)
	}
	if r.Expiry.IsZero() {
		return fmt.Errorf("%w: no expiry", ErrInvalidRecord)
	}
	if !r.Expiry.After(time.Unix(0, 0)) || r.Expiry.After(time.Unix(0, maxExpiryNanos)) {
		return fmt.Errorf("%w: expiry %s out of range", ErrInvalidRecord, r.Expiry.UTC().Format(time.RFC3339))
	}
	return nil
}

// appendRecordBody appends the encoding of r without its MAC. r must be
// valid.
func appendRecordBody(dst []byte, r Record) []byte {
	var flags byte
	if r.Primary {
		flags |= flagPrimary
	}
	dst = append(dst, recordFormat, flags, r.Replication)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Expiry.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, r.Version.Clock)
	dst = binary.BigEndian.AppendUint64(dst, r.Version.Node)
	dst = append(dst, r.Key[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Value)))
	return append(dst, r.Value...)
}

// recordKey is the node secret that records are sealed with, with HMAC-SHA256
// states kept for reuse: one Get or Put costs no new hash state.
type recordKey struct {
	macs sync.Pool // of hash.Hash, HMAC-SHA256 under the secret
}

func newRecordKey(secret []byte) *recordKey {
	secret = bytes.Clone(secret)
	k := &recordKey{}
	k.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

// mac appends the HMAC-SHA256 of pos || body to dst.
func (k *recordKey) mac(dst []byte, pos Position, body []byte) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(pos[:])
	m.Write(body)
	dst = m.Sum(dst)
	k.macs.Put(m)
	return dst
}

// encodeRecord returns the stored form of r (body and MAC). r must be valid.
func encodeRecord(k *recordKey, r Record) []byte {
	b := appendRecordBody(make([]byte, 0, recordOverhead+len(r.Value)), r)
	return k.mac(b, r.Position(), b)
}

// parseRecord decodes the stored form b without checking its MAC. The value
// is copied. Any malformed input yields ErrInvalidRecord.
func parseRecord(b []byte) (Record, error) {
	if len(b) < recordOverhead+MinValueSize {
		return Record{}, fmt.Errorf("%w: %d bytes is too short", ErrInvalidRecord, len(b))
	}
	if b[0] != recordFormat {
		return Record{}, fmt.Errorf("%w: unknown format %d", ErrInvalidRecord, b[0])
	}
	if b[1]&^flagPrimary != 0 {
		return Record{}, fmt.Errorf("%w: unknown flags %#x", ErrInvalidRecord, b[1])
	}
	exp := binary.BigEndian.Uint64(b[3:11])
	if exp == 0 || exp > maxExpiryNanos {
		return Record{}, fmt.Errorf("%w: expiry %d out of range", ErrInvalidRecord, exp)
	}
	n := int(binary.BigEndian.Uint16(b[59:61]))
	if n < MinValueSize || n > MaxValueSize {
		return Record{}, fmt.Errorf("%w: value size %d out of range", ErrInvalidRecord, n)
	}
	if len(b) != recordOverhead+n {
		return Record{}, fmt.Errorf("%w: %d bytes for a %d-byte value", ErrInvalidRecord, len(b), n)
	}
	r := Record{
		Primary:     b[1]&flagPrimary != 0,
		Replication: b[2],
		Expiry:      time.Unix(0, int64(exp)),
		Version: Version{
			Clock: binary.BigEndian.Uint64(b[11:19]),
			Node:  binary.BigEndian.Uint64(b[19:27]),
		},
		Value: append([]byte(nil), b[recordHeader:recordHeader+n]...),
	}
	copy(r.Key[:], b[27:59])
	return r, nil
}

// openRecord decodes the stored form b found at pos and checks its MAC under
// k (and that pos is the key's position). A failure matches
// ErrTampered.
func openRecord(k *recordKey, pos Position, b []byte) (Record, error) {
	r, err := parseRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	body, mac := b[:len(b)-recordMACSize], b[len(b)-recordMACSize:]
	var sum [recordMACSize]byte
	if !hmac.Equal(mac, k.mac(sum[:0], pos, body)) {
		return Record{}, fmt.Errorf("%w: HMAC mismatch at position %x", ErrTampered, pos)
	}
	if r.Position() != pos {
		// Unreachable with a correct MAC; kept as a second line of defence.
		return Record{}, fmt.Errorf("%w: key does not hash to position %x", ErrTampered, pos)
	}
	return r, nil
}

// rawExpiry returns the expiry field of a stored record without checking
// anything else, and whether b is long enough to hold one.
func rawExpiry(b []byte) (uint64, bool) {
	if len(b) < 11 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[3:11]), true
}

// rawHeader returns the role, value size and expiry of a stored record
// without checking its MAC, and whether the header is readable.
func rawHeader(b []byte) (primary bool, valueSize int, expiry uint64, ok bool) {
	if len(b) < recordOverhead || b[0] != recordFormat {
		return false, 0, 0, false
	}
	return b[1]&flagPrimary != 0, int(binary.BigEndian.Uint16(b[59:61])), binary.BigEndian.Uint64(b[3:11]), true
}

// indexKey returns the expiry index key: big-endian expiry || position.
func indexKey(expiry uint64, pos Position) []byte {
	k := make([]byte, 0, 8+len(pos))
	k = binary.BigEndian.AppendUint64(k, expiry)
	return append(k, pos[:]...)
}
