package api

import (
	"testing"
	"time"
)

// The rate is the mean over the 10 whole seconds before the current one:
// the current second does not count yet, requests older than the window no
// longer do, and a bucket reused a window later starts from zero.
func TestRequestRate(t *testing.T) {
	var r requestRate
	t0 := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	for i := range 30 {
		r.add(at(0.1 * float64(i))) // 10 in second 0, 10 in 1, 10 in 2
	}
	for _, tt := range []struct {
		now  float64
		want float64
	}{
		{0.5, 0},  // second 0 is not whole yet
		{1.5, 1},  // 10 requests / 10 s
		{3.2, 3},  // seconds 0..2
		{10.9, 3}, // seconds 0..9: still all three
		{11.0, 2}, // second 0 has left the window
		{13.0, 0}, // all have
		{100, 0},  // long after
	} {
		if got := r.perSecond(at(tt.now)); got != tt.want {
			t.Errorf("perSecond(t0+%vs) = %v; want %v", tt.now, got, tt.want)
		}
	}
	// Second 11 lands in second 0's bucket: it counts afresh, with second
	// 2 the only other one in the window (2..11).
	r.add(at(11.5))
	if got, want := r.perSecond(at(12)), 11.0/10; got != want {
		t.Errorf("perSecond after a reused bucket = %v; want %v", got, want)
	}
}
