package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// permutations returns every ordering of vs.
func permutations(vs []Version) [][]Version {
	if len(vs) <= 1 {
		return [][]Version{append([]Version(nil), vs...)}
	}
	var out [][]Version
	for i := range vs {
		rest := append(append([]Version(nil), vs[:i]...), vs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]Version{vs[i]}, p...))
		}
	}
	return out
}

func recVersion(name string, v Version) Record {
	r := rec(name, v.Clock)
	r.Version = v
	r.Value = []byte(fmt.Sprintf("%s@%s", name, v))
	return r
}

// Whatever order versions arrive in, the newest one is kept.
func TestNewerWinsAllOrders(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	versions := []Version{{1, 1}, {1, 2}, {2, 1}, {3, 0}, {3, 5}}
	newest := Version{3, 5}
	for i, order := range permutations(versions) {
		name := fmt.Sprint("perm", i)
		best := Version{}
		for _, v := range order {
			stored := mustPut(t, s, recVersion(name, v))
			if want := v.Compare(best) > 0; stored != want {
				t.Fatalf("order %v: Put(%v) stored = %v; want %v", order, v, stored, want)
			}
			if stored {
				best = v
			}
		}
		got, err := s.Get(testKey(name))
		if err != nil || got.Version != newest || string(got.Value) != name+"@"+newest.String() {
			t.Fatalf("order %v: Get = %v %q, %v; want %v", order, got.Version, got.Value, err, newest)
		}
	}
}

// Concurrent puts of many versions of the same keys (sharing group commits)
// leave the newest of each, and exactly one put per key reports storing it.
func TestNewerWinsConcurrent(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	const keys, versions = 8, 40
	var mu sync.Mutex // guards storedNewest
	storedNewest := map[string]int{}
	var wg sync.WaitGroup
	for v := range versions {
		for k := range keys {
			wg.Go(func() {
				name := fmt.Sprint("c", k)
				ver := Version{Clock: uint64(v*7%versions + 1), Node: uint64(k)}
				stored, err := s.Put(context.Background(), recVersion(name, ver))
				if err != nil {
					t.Errorf("Put: %v", err)
				}
				if stored && ver.Clock == versions {
					mu.Lock()
					storedNewest[name]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for k := range keys {
		name := fmt.Sprint("c", k)
		want := Version{Clock: versions, Node: uint64(k)}
		got, err := s.Get(testKey(name))
		if err != nil || got.Version != want {
			t.Errorf("Get(%s) = %v, %v; want %v", name, got.Version, err, want)
		}
		if storedNewest[name] != 1 {
			t.Errorf("newest version of %s stored %d times; want 1", name, storedNewest[name])
		}
	}
}
