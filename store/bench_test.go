package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func benchRecord(i uint64, value []byte) Record {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], i)
	return Record{Key: key, Value: value, Expiry: time.Now().Add(time.Hour), Version: Version{1, 1}, Primary: true}
}

// BenchmarkPut measures durable (fsynced) put throughput with 1, 16 and 256
// concurrent writers sharing group commits; b.N puts are split among them.
func BenchmarkPut(b *testing.B) {
	value := make([]byte, 100)
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(b.TempDir(), DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			var next atomic.Uint64
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > uint64(b.N) {
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
		})
	}
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
