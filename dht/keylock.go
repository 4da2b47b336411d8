package dht

import (
	"context"
	"sync"
)

// keyLocks serialises the owner's PUTs of one key: a PUT of a key starts
// only once the one before it has reached its write quorum or failed, so
// that what the owner serves while a version is short of its quorum (see
// confirmations) is always the last version acknowledged, never one from
// before it. PUTs of different keys do not wait for each other. Memory is
// one entry per key with a PUT in progress or waiting.
type keyLocks struct {
	mu sync.Mutex // guards m
	m  map[[32]byte]*keyLock
}

type keyLock struct {
	held chan struct{} // capacity 1: full while a PUT of the key runs
	refs int           // PUTs holding or waiting for it; guarded by keyLocks.mu
}

func newKeyLocks() *keyLocks { return &keyLocks{m: make(map[[32]byte]*keyLock)} }

// lock waits until no other PUT of key runs, or until ctx ends (then it
// returns ctx's error); the returned func releases the key.
func (l *keyLocks) lock(ctx context.Context, key [32]byte) (func(), error) {
	l.mu.Lock()
	k := l.m[key]
	if k == nil {
		k = &keyLock{held: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	select {
	case k.held <- struct{}{}:
		return func() {
			<-k.held
			l.release(key, k)
		}, nil
	case <-ctx.Done():
		l.release(key, k)
		return nil, ctx.Err()
	}
}

// release drops one reference to k, and the entry with the last one.
func (l *keyLocks) release(key [32]byte, k *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(l.m, key)
	}
}
