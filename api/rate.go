package api

import (
	"sync/atomic"
	"time"
)

// rateWindow is the number of whole seconds a requestRate averages over.
const rateWindow = 10

// requestRate counts requests in one-second buckets, so that the rate over
// the last rateWindow whole seconds can be read at any time without a
// sampling loop. It takes no lock: every request of every connection counts
// here. A request that lands while its bucket is being reused for a new
// second may go uncounted; the rate is for display.
type requestRate struct {
	sec   [rateWindow + 1]atomic.Int64  // the Unix second each bucket counts
	count [rateWindow + 1]atomic.Uint64 // the requests in that second
}

// add counts one request at now.
func (r *requestRate) add(now time.Time) {
	s := now.Unix()
	i := s % int64(len(r.sec))
	if old := r.sec[i].Load(); old != s && r.sec[i].CompareAndSwap(old, s) {
		r.count[i].Store(0) // the first request of a new second reuses the bucket
	}
	r.count[i].Add(1)
}

// perSecond returns the mean requests per second over the rateWindow whole
// seconds before now's.
func (r *requestRate) perSecond(now time.Time) float64 {
	s := now.Unix()
	var n uint64
	for i := range r.sec {
		if sec := r.sec[i].Load(); sec < s && sec >= s-rateWindow {
			n += r.count[i].Load()
		}
	}
	return float64(n) / rateWindow
}
