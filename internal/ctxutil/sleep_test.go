package ctxutil

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSleep: a sleep ends with nil once its time is up, with the context's
// error when the context ends first, and at once for no time at all.
func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v; want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(1h) on an ended context = %v; want %v", err, context.Canceled)
	}
	if err := Sleep(ctx, 0); err != nil {
		t.Errorf("Sleep(0) = %v; want nil", err)
	}
}
