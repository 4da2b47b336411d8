package store

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Store. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Timeout is how long Open waits for the database file lock before
	// failing with ErrLocked. Default 2s.
	Timeout time.Duration
	// ReadOnly opens the database with a shared lock and no writes: no
	// file or secret is created, and every write returns ErrReadOnly.
	// A database held by a running node then fails with ErrLocked.
	// Default false.
	ReadOnly bool
	// MaxBatch caps how many writes go into one group commit. Default 1024.
	MaxBatch int
	// Logger receives lifecycle and error events. Nil means no logging.
	Logger hclog.Logger
	// Metrics registers the store's collectors. Nil leaves them
	// unregistered (they still count).
	Metrics prometheus.Registerer
	// Now returns the current time, for expiry checks. Nil means time.Now.
	Now func() time.Time
	// SecretPath is the node secret's file. Default "": node.secret beside
	// the database.
	SecretPath string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Timeout:  2 * time.Second,
		MaxBatch: 1024,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: timeout %s must be positive", ErrInvalidArgument, c.Timeout)
	}
	if c.MaxBatch < 1 {
		return fmt.Errorf("%w: max batch %d must be at least 1", ErrInvalidArgument, c.MaxBatch)
	}
	return nil
}
