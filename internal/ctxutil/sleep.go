// Package ctxutil holds small helpers around context.Context that several
// packages of the module share.
package ctxutil

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx ends, and then returns ctx's error. A d of
// zero or less returns nil at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
