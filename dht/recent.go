package dht

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/durachord/durachord/store"
)

// Read-your-writes at the entry node. While the ring changes hands (an
// owner comes back, or a newcomer takes an arc), two nodes can believe for
// a moment that they own a key, and a GET routed to the one that did not
// take the last PUT would answer an older copy. The entry node therefore
// remembers, for a few seconds, the version of each PUT it had acknowledged,
// and a GET through it that comes back older than that (or finds nothing)
// answers the remembered value instead. Bounded in entries and value bytes;
// when full, a PUT is not remembered (the ring's own guarantees remain).

// Bounds of the memory of recent PUTs.
const (
	recentFor      = 10 * time.Second
	recentMax      = 1 << 16
	recentMaxBytes = 16 << 20
)

type recentPut struct {
	rec  store.Record
	seen time.Time // when it was acknowledged (the monotonic clock)
}

type recentPuts struct {
	mu    sync.Mutex
	m     map[[32]byte]recentPut
	bytes int
	n     atomic.Int64 // len(m), read without the lock by every GET
}

func newRecentPuts() *recentPuts { return &recentPuts{m: make(map[[32]byte]recentPut)} }

// note remembers rec as acknowledged now, unless a newer one is remembered.
func (r *recentPuts) note(rec store.Record, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[rec.Key]; ok {
		if old.rec.Version.Compare(rec.Version) > 0 {
			return
		}
		r.bytes -= len(old.rec.Value)
		delete(r.m, rec.Key)
	}
	if len(r.m) >= recentMax || r.bytes+len(rec.Value) > recentMaxBytes {
		r.expire(now)
		if len(r.m) >= recentMax || r.bytes+len(rec.Value) > recentMaxBytes {
			return
		}
	}
	rec.Value = append([]byte(nil), rec.Value...)
	r.m[rec.Key] = recentPut{rec: rec, seen: now}
	r.bytes += len(rec.Value)
	r.n.Store(int64(len(r.m)))
}

// expire forgets what is older than recentFor. r.mu is held.
func (r *recentPuts) expire(now time.Time) {
	for k, p := range r.m {
		if now.Sub(p.seen) >= recentFor {
			r.bytes -= len(p.rec.Value)
			delete(r.m, k)
		}
	}
	r.n.Store(int64(len(r.m)))
}

// newer returns the remembered PUT of key if it is newer than got (or got
// is not found: found false), still live, and acknowledged within
// recentFor.
func (r *recentPuts) newer(key [32]byte, got store.Version, found bool, now, wall time.Time) (store.Record, bool) {
	if r.n.Load() == 0 {
		return store.Record{}, false // a node that took no PUT lately takes no lock
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.n.Store(int64(len(r.m))) }()
	p, ok := r.m[key]
	switch {
	case !ok:
		return store.Record{}, false
	case now.Sub(p.seen) >= recentFor || !p.rec.Expiry.After(wall):
		r.bytes -= len(p.rec.Value)
		delete(r.m, key)
		return store.Record{}, false
	case found && p.rec.Version.Compare(got) <= 0:
		return store.Record{}, false
	}
	return p.rec, true
}
