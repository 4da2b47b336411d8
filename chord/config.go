package chord

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// MetaStore keeps small node state across restarts (package store implements
// it). Meta returns nil, nil for an absent key.
type MetaStore interface {
	Meta(key string) ([]byte, error)
	SetMeta(key string, value []byte) error
}

// Config tunes a Node. Get one from DefaultConfig and change what you need;
// New copies it and never changes the caller's value.
type Config struct {
	// SuccessorListLen is the number of successors each node keeps (r in the
	// Chord paper). Default 8.
	SuccessorListLen int
	// StabilizeInterval is the period of the stabilise round (ask the
	// successor for its predecessor and successor list, then notify it).
	// Default 1s.
	StabilizeInterval time.Duration
	// FixFingersInterval is the period of the fix-fingers round (one lookup
	// that refreshes a run of fingers). Default 1s.
	FixFingersInterval time.Duration
	// CheckPredecessorInterval is the period of the predecessor ping.
	// Default 2s.
	CheckPredecessorInterval time.Duration
	// ProbeInterval is the period of the probe round: a few remembered peers
	// that were evicted are asked for this node's successor in their ring, so
	// that rings split by a partition merge again. Default 5s.
	ProbeInterval time.Duration
	// RoundTimeout bounds one round of any periodic loop. Default 5s.
	RoundTimeout time.Duration
	// CallTimeout bounds one call to a peer. Default 2s.
	CallTimeout time.Duration
	// LookupTimeout bounds a whole lookup. Default 10s.
	LookupTimeout time.Duration
	// MaxHops bounds the number of peers one lookup queries. Default 32.
	MaxHops int
	// SuspectAfter is the number of consecutive failed calls after which a
	// peer is evicted from the successor list, predecessor and fingers. A
	// failed call first makes the peer a suspect; maintenance rounds retry it
	// after ConfirmDelay to confirm. At least 2 (never evict on one failed
	// call). Default 2.
	SuspectAfter int
	// ConfirmDelay is the pause before a maintenance round calls a failing
	// peer again to confirm the failure, so that a blip shorter than it (a
	// restarting switch port, a dropped connection being redialled) does
	// not evict a live neighbour. 0 retries at once. Default 250ms.
	ConfirmDelay time.Duration
	// SuspectTimeout is how long a failed call keeps a peer suspected:
	// lookups skip it (asking the others to skip it too) and it is offered
	// last as a route. A later successful call clears the suspicion.
	// Default 30s.
	SuspectTimeout time.Duration
	// CacheSize bounds the cache of nodes learned from lookup replies
	// (least recently learned evicted first), and the owner cache of arcs
	// learned from them (least recently used evicted first); 0 disables
	// both. Default 1024.
	CacheSize int
	// RememberSize bounds the number of evicted peers remembered for the
	// probe round. Default 64.
	RememberSize int
	// RememberFor is how long an evicted peer is remembered. Default 24h.
	RememberFor time.Duration
	// ProbeCount is the number of remembered peers probed per probe round.
	// Default 3.
	ProbeCount int
	// Logger receives the node's logs. Default (nil): no logs.
	Logger hclog.Logger
	// Metrics registers the node's collectors. Default (nil): unregistered.
	Metrics prometheus.Registerer
	// MetaKey is the MetaStore key under which the node keeps its peers.
	// Default "chord.peers"; further positions of one node sharing a store
	// need keys of their own.
	MetaKey string
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		SuccessorListLen:         8,
		StabilizeInterval:        time.Second,
		FixFingersInterval:       time.Second,
		CheckPredecessorInterval: 2 * time.Second,
		ProbeInterval:            5 * time.Second,
		RoundTimeout:             5 * time.Second,
		CallTimeout:              2 * time.Second,
		LookupTimeout:            10 * time.Second,
		MaxHops:                  32,
		SuspectAfter:             2,
		ConfirmDelay:             250 * time.Millisecond,
		SuspectTimeout:           30 * time.Second,
		CacheSize:                1024,
		RememberSize:             64,
		RememberFor:              24 * time.Hour,
		ProbeCount:               3,
	}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"StabilizeInterval", c.StabilizeInterval},
		{"FixFingersInterval", c.FixFingersInterval},
		{"CheckPredecessorInterval", c.CheckPredecessorInterval},
		{"ProbeInterval", c.ProbeInterval},
		{"RoundTimeout", c.RoundTimeout},
		{"CallTimeout", c.CallTimeout},
		{"LookupTimeout", c.LookupTimeout},
		{"RememberFor", c.RememberFor},
		{"SuspectTimeout", c.SuspectTimeout},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return fmt.Errorf("%w: %s must be positive, is %v", ErrConfig, d.name, d.d)
		}
	}
	switch {
	case c.SuccessorListLen < 1 || c.SuccessorListLen > 256:
		return fmt.Errorf("%w: SuccessorListLen must be in [1, 256], is %d", ErrConfig, c.SuccessorListLen)
	case c.MaxHops < 1:
		return fmt.Errorf("%w: MaxHops must be at least 1, is %d", ErrConfig, c.MaxHops)
	case c.ConfirmDelay < 0 || c.ConfirmDelay >= c.RoundTimeout:
		return fmt.Errorf("%w: ConfirmDelay must be in [0, RoundTimeout), is %v", ErrConfig, c.ConfirmDelay)
	case c.SuspectAfter < 2:
		return fmt.Errorf("%w: SuspectAfter must be at least 2, is %d", ErrConfig, c.SuspectAfter)
	case c.CacheSize < 0:
		return fmt.Errorf("%w: CacheSize must not be negative, is %d", ErrConfig, c.CacheSize)
	case c.RememberSize < 0:
		return fmt.Errorf("%w: RememberSize must not be negative, is %d", ErrConfig, c.RememberSize)
	case c.ProbeCount < 0:
		return fmt.Errorf("%w: ProbeCount must not be negative, is %d", ErrConfig, c.ProbeCount)
	}
	return nil
}

// FurtherPosition returns c for a ring position other than the first of a
// node that stands at v positions (virtual nodes): it stabilises, checks its
// predecessor and probes every v intervals and refreshes a finger every 2v,
// so that the node's ring maintenance at v positions stays within about
// twice that at one (docs/benchmarks.md, Virtual nodes).
func (c Config) FurtherPosition(v int) Config {
	if v < 2 {
		return c
	}
	d := time.Duration(v)
	c.StabilizeInterval *= d
	c.CheckPredecessorInterval *= d
	c.ProbeInterval *= d
	c.FixFingersInterval *= 2 * d
	return c
}
