package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Hints: PUTs that this node took from a client but could not hand to the
// key's owner in time, kept until they are delivered (hinted handoff). They
// live in a bucket of their own, apart from the records this node holds,
// one a key (a later hint of the same key replaces the earlier one), in the
// records' sealed encoding. A hint's Version.Clock is the time the PUT was
// taken (Unix nanoseconds); its Node is 0.

var bucketHints = []byte("hints")

// ErrHintsFull: the store holds as many hints as it may.
var ErrHintsFull = errors.New("store: hint store full")

// hintState is what the store knows of its hints without reading them.
type hintState struct {
	mu    sync.Mutex   // serialises the writes of hints, so that n and bytes follow them
	n     atomic.Int64 // hints stored
	bytes atomic.Int64 // their value bytes
}

// PutHint durably stores h as the hint for its key, replacing an older one,
// unless the store would then hold more than maxCount hints or maxBytes of
// their values (ErrHintsFull; a replacement is always allowed to shrink).
// h.Version.Clock must be the time the PUT was taken.
func (s *Store) PutHint(ctx context.Context, h Record, maxCount int, maxBytes int64) error {
	if err := h.validate(); err != nil {
		return err
	}
	if s.cfg.ReadOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.Primary = false
	pos := h.Position()
	enc := encodeRecord(s.key, h)
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	var n, bytes int64
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHints)
		n, bytes = s.hints.n.Load(), s.hints.bytes.Load()
		if old := b.Get(pos[:]); old != nil {
			_, size, _, _ := rawHeader(old)
			n, bytes = n-1, bytes-int64(size)
		}
		if n+1 > int64(maxCount) || bytes+int64(len(h.Value)) > maxBytes {
			return fmt.Errorf("%w: %d hints, %d bytes", ErrHintsFull, s.hints.n.Load(), s.hints.bytes.Load())
		}
		return b.Put(pos[:], enc)
	})
	if err != nil {
		return err
	}
	s.hints.n.Store(n + 1)
	s.hints.bytes.Store(bytes + int64(len(h.Value)))
	return nil
}

// GetHint returns the hint for key, or ErrNotFound. A hint that fails its
// HMAC is not returned (the error matches ErrTampered too).
func (s *Store) GetHint(key [32]byte) (Record, error) {
	if s.hints.n.Load() == 0 {
		return Record{}, fmt.Errorf("hint %x: %w", key[:4], ErrNotFound)
	}
	pos := PositionOf(key)
	var r Record
	var err error
	found := false
	if verr := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketHints).Get(pos[:]); v != nil {
			found = true
			r, err = openRecord(s.key, pos, v)
		}
		return nil
	}); verr != nil {
		return Record{}, verr
	}
	switch {
	case !found:
		return Record{}, fmt.Errorf("hint %x: %w", key[:4], ErrNotFound)
	case err != nil:
		s.countTampered(pos, err)
		return Record{}, fmt.Errorf("hint %x: %w (%w)", key[:4], ErrNotFound, err)
	}
	return r, nil
}

// Hints returns up to limit hints, in ring order after the position after
// (nil: from the start), and the position to continue after (nil when there
// are no more). A hint that fails its HMAC is deleted and counted.
func (s *Store) Hints(after *Position, limit int) ([]Record, *Position, error) {
	if s.hints.n.Load() == 0 {
		return nil, nil, nil
	}
	var out []Record
	var bad []Position
	var next *Position
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHints).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after[:]); k != nil && Position(k) == *after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(out) >= limit {
				p := Position(out[len(out)-1].Position())
				next = &p
				return nil
			}
			pos := Position(k)
			r, err := openRecord(s.key, pos, v)
			if err != nil {
				s.countTampered(pos, err)
				bad = append(bad, pos)
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, p := range bad {
		if err := s.deleteHintAt(p, nil); err != nil {
			return out, next, err
		}
	}
	return out, next, nil
}

// DeleteHint durably deletes the hint for key if it is still the one taken
// at version (a later hint of the key stays).
func (s *Store) DeleteHint(key [32]byte, version Version) error {
	return s.deleteHintAt(PositionOf(key), &version)
}

func (s *Store) deleteHintAt(pos Position, version *Version) error {
	if s.cfg.ReadOnly {
		return ErrReadOnly
	}
	s.hints.mu.Lock()
	defer s.hints.mu.Unlock()
	deleted, size := false, 0
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHints)
		old := b.Get(pos[:])
		if old == nil {
			return nil
		}
		if version != nil {
			r, err := parseRecord(old)
			if err == nil && r.Version != *version {
				return nil
			}
		}
		_, size, _, _ = rawHeader(old)
		deleted = true
		return b.Delete(pos[:])
	})
	if err != nil || !deleted {
		return err
	}
	s.hints.n.Add(-1)
	s.hints.bytes.Add(-int64(size))
	return nil
}

// HintCount returns the hints stored and their value bytes.
func (s *Store) HintCount() (int, int64) {
	return int(s.hints.n.Load()), s.hints.bytes.Load()
}

// countHints loads the hint counts at open (hints are few: they exist only
// while an owner is out of reach).
func (s *Store) countHints(tx *bolt.Tx) {
	b := tx.Bucket(bucketHints)
	if b == nil {
		return
	}
	var n, bytes int64
	_ = b.ForEach(func(_, v []byte) error {
		_, size, _, _ := rawHeader(v)
		n++
		bytes += int64(size)
		return nil
	})
	s.hints.n.Store(n)
	s.hints.bytes.Store(bytes)
}
