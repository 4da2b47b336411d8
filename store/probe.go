package store

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// metaProbe is the meta key Probe reads and writes.
var metaProbe = []byte("probe")

// Probe checks that the store serves a read and makes a durable commit
// within ctx's deadline: it reads the meta key "probe" in a read
// transaction, then writes it (the current time) through the group commit
// that every record write takes, and returns once that commit is fsynced.
// A read blocked behind a stuck commit, or a commit that cannot finish,
// makes it fail when ctx ends (wrapping ErrStalled and ctx's error).
//
// The work runs in one goroutine, which keeps running until the store
// answers; while it runs, another Probe fails at once with ErrStalled, so
// a stuck store holds one goroutine, not one per probe. Close waits for it.
func (s *Store) Probe(ctx context.Context) error {
	err := s.probe(ctx)
	if err != nil {
		s.metrics.probeFailures.Inc()
	}
	return err
}

func (s *Store) probe(ctx context.Context) error {
	if s.cfg.ReadOnly {
		return ErrReadOnly
	}
	if !s.probing.CompareAndSwap(false, true) {
		return fmt.Errorf("probe: %w (the previous probe has not finished)", ErrStalled)
	}
	done := make(chan error, 1) // the goroutine never blocks on it
	s.probes.Go(func() {
		err := s.readWrite()
		// Clear the flag before answering: a probe that follows one that
		// has returned must not find it still running.
		s.probing.Store(false)
		done <- err
	})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("probe: %w: %w", ErrStalled, ctx.Err())
	}
}

// readWrite is the work of one probe.
func (s *Store) readWrite() error {
	err := s.view(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucketMeta).Get(metaProbe) // the read is the check
		return nil
	})
	if err != nil {
		return fmt.Errorf("probe read: %w", err)
	}
	enc := binary.BigEndian.AppendUint64(nil, uint64(s.now().UnixNano()))
	if _, err := s.enqueue(context.Background(), &op{kind: opProbe, enc: enc}); err != nil {
		return fmt.Errorf("probe commit: %w", err)
	}
	return nil
}
