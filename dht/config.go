package dht

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes the records layer. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// DefaultTTL applies to a PUT with TTL 0. Default 1h.
	DefaultTTL time.Duration
	// MaxTTL caps the TTL a client asks for. Default 18h12m15s (the largest
	// the client protocol can carry).
	MaxTTL time.Duration
	// DefaultReplication applies to a PUT with replication 0. Default 3.
	DefaultReplication int
	// MaxReplication caps the replication a client asks for; the ring size
	// caps it too. Default 8.
	MaxReplication int
	// WriteQuorum is how many nodes, the owner included, must hold a PUT on
	// disk before it is acknowledged: the owner and WriteQuorum-1 replica
	// holders. A record of replication r on a ring where the owner knows h
	// holders needs min(WriteQuorum, r, h+1); pushes to the other holders
	// go on in the background. 1 acknowledges on the owner's write alone.
	// At most MaxReplication. Default 2.
	WriteQuorum int
	// MaxBackgroundPushes caps the replica pushes queued or in flight to
	// one holder, those a PUT waits for and those that go on after it was
	// acknowledged; a PUT whose push finds the holder's queue full waits
	// for room within its deadline. Default 256.
	MaxBackgroundPushes int
	// RepairRetryWindow bounds how long a holder that missed pushes is
	// retried (with backoff) by the immediate repair; after it, the holder
	// is left to the maintenance round. Default 1m.
	RepairRetryWindow time.Duration
	// CallTimeout bounds one call to another node. Default 2s.
	CallTimeout time.Duration
	// SweepInterval is how often expired records are deleted. Default 1m.
	SweepInterval time.Duration
	// MaintainInterval is how often the maintenance round (placement and
	// anti-entropy) runs besides the rounds that ring changes start.
	// Default 30s.
	MaintainInterval time.Duration
	// RepairRate caps the records one maintenance round sends or fetches per
	// second. Default 2000.
	RepairRate int
	// MaxClockAhead is how far ahead of this node's clock the version of a
	// record received from another node may be; a record further ahead is
	// refused and counted (durachord_dht_refused_records_total). Default 2m:
	// clocks up to a minute apart, the skew supported, leave a minute to spare.
	MaxClockAhead time.Duration
	// MaxHints and MaxHintBytes bound the hints this node keeps for owners
	// it could not reach (their count and their value bytes); a PUT that
	// finds them full fails as before hinted handoff. Default 65536 and
	// 64 MiB.
	MaxHints     int
	MaxHintBytes int64
	// HintInterval is how often the hints are offered to their owners.
	// Default 1s.
	HintInterval time.Duration
	// StartInSync treats the node's records as current from the start, so
	// that an owner answers from them alone before its first maintenance
	// round (see "An owner out of sync" in docs/protocol.md). Only for rings
	// built from nothing at once, as the ring simulator builds them; a node
	// of a real ring leaves it false. Default false.
	StartInSync bool
	// PageBytes caps the value bytes in one page of records on the wire.
	// Default 1 MiB.
	PageBytes int
	// Logger; nil discards.
	Logger hclog.Logger
	// Metrics registers the layer's collectors; nil leaves them unregistered.
	Metrics prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		DefaultTTL:          time.Hour,
		MaxTTL:              65535 * time.Second,
		DefaultReplication:  3,
		MaxReplication:      8,
		WriteQuorum:         2,
		MaxBackgroundPushes: 256,
		RepairRetryWindow:   time.Minute,
		CallTimeout:         2 * time.Second,
		SweepInterval:       time.Minute,
		MaintainInterval:    30 * time.Second,
		RepairRate:          2000,
		PageBytes:           1 << 20,
		MaxClockAhead:       2 * time.Minute,
		MaxHints:            1 << 16,
		MaxHintBytes:        64 << 20,
		HintInterval:        time.Second,
	}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.DefaultTTL <= 0:
		return fmt.Errorf("dht: default TTL must be positive, have %v", c.DefaultTTL)
	case c.MaxTTL < time.Second:
		return fmt.Errorf("dht: max TTL must be at least 1s, have %v", c.MaxTTL)
	case c.DefaultReplication < 1 || c.DefaultReplication > 255:
		return fmt.Errorf("dht: default replication must be 1..255, have %d", c.DefaultReplication)
	case c.MaxReplication < 1 || c.MaxReplication > 255:
		return fmt.Errorf("dht: max replication must be 1..255, have %d", c.MaxReplication)
	case c.WriteQuorum < 1 || c.WriteQuorum > c.MaxReplication:
		return fmt.Errorf("dht: write quorum must be 1..max replication (%d), have %d", c.MaxReplication, c.WriteQuorum)
	case c.MaxBackgroundPushes < 1:
		return fmt.Errorf("dht: max background pushes must be at least 1, have %d", c.MaxBackgroundPushes)
	case c.RepairRetryWindow <= 0:
		return fmt.Errorf("dht: repair retry window must be positive, have %v", c.RepairRetryWindow)
	case c.MaxHints < 0 || c.MaxHintBytes < 0:
		return fmt.Errorf("dht: max hints and max hint bytes must not be negative, have %d and %d", c.MaxHints, c.MaxHintBytes)
	case c.HintInterval <= 0:
		return fmt.Errorf("dht: hint interval must be positive, have %v", c.HintInterval)
	case c.MaxClockAhead <= 0:
		return fmt.Errorf("dht: max clock ahead must be positive, have %v", c.MaxClockAhead)
	case c.CallTimeout <= 0:
		return fmt.Errorf("dht: call timeout must be positive, have %v", c.CallTimeout)
	case c.SweepInterval <= 0:
		return fmt.Errorf("dht: sweep interval must be positive, have %v", c.SweepInterval)
	case c.MaintainInterval <= 0:
		return fmt.Errorf("dht: maintain interval must be positive, have %v", c.MaintainInterval)
	case c.RepairRate < 1:
		return fmt.Errorf("dht: repair rate must be at least 1, have %d", c.RepairRate)
	case c.PageBytes < MaxValueBytes:
		return fmt.Errorf("dht: page bytes must be at least %d, have %d", MaxValueBytes, c.PageBytes)
	}
	return nil
}
