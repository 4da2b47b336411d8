package api

import (
	"sync"
	"time"
)

// rateWindow is the number of whole seconds a requestRate averages over.
const rateWindow = 10

// requestRate counts requests in one-second buckets, so that the rate over
// the last rateWindow whole seconds can be read at any time without a
// sampling loop.
type requestRate struct {
	mu    sync.Mutex             // guards the buckets
	sec   [rateWindow + 1]int64  // the Unix second each bucket counts
	count [rateWindow + 1]uint64 // the requests in that second
}

// add counts one request at now.
func (r *requestRate) add(now time.Time) {
	s := now.Unix()
	i := s % int64(len(r.sec))
	r.mu.Lock()
	if r.sec[i] != s {
		r.sec[i], r.count[i] = s, 0
	}
	r.count[i]++
	r.mu.Unlock()
}

// perSecond returns the mean requests per second over the rateWindow whole
// seconds before now's.
func (r *requestRate) perSecond(now time.Time) float64 {
	s := now.Unix()
	var n uint64
	r.mu.Lock()
	for i, sec := range r.sec {
		if sec < s && sec >= s-rateWindow {
			n += r.count[i]
		}
	}
	r.mu.Unlock()
	return float64(n) / rateWindow
}
