package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func benchRecord(i uint64, value []byte) Record {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], i)
	return Record{Key: key, Value: value, Expiry: time.Now().Add(time.Hour), Version: Version{1, 1}, Primary: true}
}

// BenchmarkPut measures durable (fsynced) put throughput with 1, 16 and 256
// concurrent writers sharing group commits; b.N puts are split among them.
// pages/commit is the pages each commit writes (bbolt's allocations).
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(b.TempDir(), DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			benchPuts(b, s, writers, 0)
		})
	}
}

// BenchmarkPutManyFree measures puts into a store whose file is mostly
// free pages (100,000 records put, then expired and swept), with the
// freelist written by every commit or, by default, left to Close once it
// holds more than freelistSyncMax pages.
func BenchmarkPutManyFree(b *testing.B) {
	c := &clock{t: time.Now()}
	s, err := Open(b.TempDir(), Config{Timeout: time.Second, MaxBatch: 4096, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	value := make([]byte, 100)
	recs := make([]Record, 100_000)
	for i := range recs {
		recs[i] = benchRecord(uint64(i), value)
		recs[i].Key = sha256.Sum256(recs[i].Key[:]) // random positions
		recs[i].Expiry = c.Now().Add(time.Minute)
	}
	if _, err := s.PutAll(context.Background(), recs); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Sweep(context.Background(), c.Now().Add(time.Hour), 0); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d free pages", s.db.Stats().FreePageN)
	first := uint64(len(recs))
	for _, policy := range []string{"default", "every-commit"} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("freelist=%s/writers=%d", policy, writers), func(b *testing.B) {
				s.freelistSyncMax = freelistSyncMax
				if policy == "every-commit" {
					s.freelistSyncMax = math.MaxInt
				}
				first = benchPuts(b, s, writers, first)
			})
		}
	}
}

// benchPuts puts b.N records of 100 bytes from writers goroutines, with
// keys from first on, and returns the next unused key.
func benchPuts(b *testing.B, s *Store, writers int, first uint64) uint64 {
	value := make([]byte, 100)
	var next atomic.Uint64
	next.Store(first)
	last := first + uint64(b.N)
	ctx := context.Background()
	pages, commits := pagesWritten(s), commitCount(s)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > last {
					return
				}
				if _, err := s.Put(ctx, benchRecord(i, value)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
	if n := commitCount(s) - commits; n > 0 {
		b.ReportMetric(float64(pagesWritten(s)-pages)/n, "pages/commit")
	}
	return last + 1
}

func pagesWritten(s *Store) int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc() / int64(s.db.Info().PageSize)
}

func commitCount(s *Store) float64 {
	var m dto.Metric
	if err := s.metrics.commits.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// fillBench opens a store holding n 100-byte records.
func fillBench(b *testing.B, n int) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	value := make([]byte, 100)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := s.Put(context.Background(), benchRecord(uint64(i), value)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return s
}

func BenchmarkGet(b *testing.B) {
	const n = 10000
	s := fillBench(b, n)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(benchRecord(uint64(i%n), nil).Key); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkRange pages through the whole circle 100 records at a time and
// reports records read per second.
func BenchmarkRange(b *testing.B) {
	const n = 10000
	s := fillBench(b, n)
	b.ResetTimer()
	records := 0
	for b.Loop() {
		var after *Position
		for {
			next, err := s.Range(Position{}, Position{}, after, 100, func(Record) error { records++; return nil })
			if err != nil {
				b.Fatal(err)
			}
			if next == nil {
				break
			}
			after = next
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
