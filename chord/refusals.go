package chord

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// refusalLogInterval is how often one peer's refusals of one kind are
// logged at most: a member that lies round after round costs one WARN line
// per interval, not one per round.
const refusalLogInterval = 10 * time.Second

// maxRefusalKeys bounds the peers and kinds refusalLog remembers; past it,
// entries older than the interval are forgotten.
const maxRefusalKeys = 1024

type refusalKey struct {
	kind string
	peer ID
}

type refusalCount struct {
	logged time.Time // when the last line was written
	since  int       // refusals since then, not yet in a line
}

// refusalLog writes the WARN lines of refused answers and named nodes: at
// most one per refusalLogInterval per peer and kind, with the number of
// refusals it stands for.
type refusalLog struct {
	mu   sync.Mutex
	last map[refusalKey]*refusalCount
}

// warn logs msg with args for a refusal of kind about peer, unless a line
// for the same peer and kind went out less than the interval ago.
func (l *refusalLog) warn(log hclog.Logger, kind string, peer ID, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last = make(map[refusalKey]*refusalCount)
	}
	k := refusalKey{kind, peer}
	c := l.last[k]
	if c == nil {
		if len(l.last) >= maxRefusalKeys {
			for k, c := range l.last {
				if now.Sub(c.logged) >= refusalLogInterval {
					delete(l.last, k)
				}
			}
		}
		c = &refusalCount{}
		if len(l.last) < maxRefusalKeys {
			l.last[k] = c
		}
	}
	c.since++
	if !c.logged.IsZero() && now.Sub(c.logged) < refusalLogInterval {
		l.mu.Unlock()
		return
	}
	events := c.since
	c.logged, c.since = now, 0
	l.mu.Unlock()
	log.Warn(msg, append(args, "events-since-last-line", events)...)
}
