package chord

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// testCandidates returns the candidate positions of a key as a certificate
// gives them: SHA-256(key) and SHA-256(key ‖ i).
func testCandidates(key []byte, k int) []ID {
	out := make([]ID, k)
	for i := range k {
		if i == 0 {
			out[i] = ID(sha256.Sum256(key))
			continue
		}
		out[i] = ID(sha256.Sum256(binary.BigEndian.AppendUint32(slices.Clone(key), uint32(i))))
	}
	return out
}

// shares returns each address's share of the circle.
func shares(ring []NodeInfo) map[string]float64 {
	slices.SortFunc(ring, func(a, b NodeInfo) int { return a.ID.Cmp(b.ID) })
	out := map[string]float64{}
	top := func(id ID) uint64 { return binary.BigEndian.Uint64(id[:8]) }
	for i, n := range ring {
		prev := ring[(i+len(ring)-1)%len(ring)]
		out[n.Addr] += float64(top(n.ID)-top(prev.ID)) / 18446744073709551616.0
	}
	return out
}

func maxOverMean(sh map[string]float64) float64 {
	m, sum := 0.0, 0.0
	for _, s := range sh {
		m = max(m, s)
		sum += s
	}
	return m / (sum / float64(len(sh)))
}

// TestChoosePositionsBalances: 16 nodes join one at a time, each choosing 4
// of its 256 candidates (keeping candidate 0) with ChoosePositions; over 10
// seeds the most loaded holds at most 1.25 times the mean share of the
// circle, where the first 4 candidates (no choice) leave far more.
func TestChoosePositionsBalances(t *testing.T) {
	const n, v, k = 16, 4, 256
	worst, worstRandom := 0.0, 0.0
	for seed := range 10 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		var ring, random []NodeInfo
		for i := range n {
			key := binary.BigEndian.AppendUint64(nil, rng.Uint64())
			addr := fmt.Sprintf("node-%d", i)
			cands := testCandidates(key, k)
			got := ChoosePositions(ring, addr, cands, []int{0}, v)
			if len(got) != v || got[0] != 0 {
				t.Fatalf("seed %d node %d: chose %v; want %d indexes starting with 0", seed, i, got, v)
			}
			seen := map[int]bool{}
			for _, c := range got {
				if seen[c] || c < 0 || c >= k {
					t.Fatalf("seed %d node %d: chose %v: an index twice or out of range", seed, i, got)
				}
				seen[c] = true
				ring = append(ring, NodeInfo{ID: cands[c], Addr: addr})
			}
			for c := range v {
				random = append(random, NodeInfo{ID: cands[c], Addr: addr})
			}
		}
		worst = max(worst, maxOverMean(shares(ring)))
		worstRandom = max(worstRandom, maxOverMean(shares(random)))
	}
	t.Logf("worst max/mean share over 10 seeds: %.3f chosen, %.3f with the first %d candidates", worst, worstRandom, v)
	if worst > 1.25 {
		t.Errorf("worst max/mean share %.3f; want at most 1.25", worst)
	}
	if worstRandom < 1.5 {
		t.Errorf("the first candidates alone give %.3f: the test does not tell a choice from none", worstRandom)
	}
}

// TestChoosePositionsKeepsWhatItHas: the positions a node stands at come
// first and stay; a node alone splits its own circle; asking for no more
// than it has changes nothing.
func TestChoosePositionsKeepsWhatItHas(t *testing.T) {
	cands := testCandidates([]byte("k"), 256)
	if got := ChoosePositions(nil, "me", cands, []int{0}, 1); !slices.Equal(got, []int{0}) {
		t.Errorf("v=1: %v; want [0]", got)
	}
	got := ChoosePositions(nil, "me", cands, []int{0, 9}, 4)
	if len(got) != 4 || got[0] != 0 || got[1] != 9 {
		t.Errorf("alone, have [0 9], v=4: %v", got)
	}
	if got := ChoosePositions(nil, "me", cands, nil, 2); len(got) != 2 {
		t.Errorf("nothing yet, v=2: %v", got)
	}
}

// TestBestMoveEvensLoads: 16 nodes that joined with ChoosePositions then
// take turns moving one position each by BestMove, a few rounds: over 5
// seeds the most loaded holds at most 1.25 times the mean share and at most
// 1.25 times the mean of the records it owns or holds (replication 3), where
// the joins alone leave more; position 0 never moves, and a node never moves
// onto a candidate of its own that it stands at.
func TestBestMoveEvensLoads(t *testing.T) {
	const n, v, k, repl = 16, 4, 256, 3
	worstJoin, worst := 0.0, 0.0
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		var ring []NodeInfo
		cands := map[string][]ID{}
		have := map[string][]int{}
		for i := range n {
			addr := fmt.Sprintf("node-%d", i)
			cands[addr] = testCandidates(binary.BigEndian.AppendUint64(nil, rng.Uint64()), k)
			have[addr] = ChoosePositions(ring, addr, cands[addr], []int{0}, v)
			for _, c := range have[addr] {
				ring = append(ring, NodeInfo{ID: cands[addr][c], Addr: addr})
			}
		}
		_, h := Loads(ring, repl)
		worstJoin = max(worstJoin, maxOverMean(h))
		for range 4 {
			for i := range n {
				addr := fmt.Sprintf("node-%d", i)
				j, c, ok := BestMove(ring, addr, cands[addr], have[addr], repl)
				if !ok {
					continue
				}
				if j == 0 || slices.Contains(have[addr], c) {
					t.Fatalf("BestMove(%s) = %d, %d: moves position 0 or onto a position it has", addr, j, c)
				}
				old := cands[addr][have[addr][j]]
				ring = slices.DeleteFunc(ring, func(x NodeInfo) bool { return x.ID == old })
				ring = append(ring, NodeInfo{ID: cands[addr][c], Addr: addr})
				have[addr][j] = c
			}
		}
		p, h := Loads(ring, repl)
		worst = max(worst, maxOverMean(p), maxOverMean(h))
	}
	t.Logf("worst primary+replica after the joins %.3f; worst of both loads after the moves %.3f", worstJoin, worst)
	if worst > 1.25 {
		t.Errorf("after the moves the most loaded holds %.3f times the mean; want at most 1.25", worst)
	}
	if worstJoin <= 1.25 {
		t.Errorf("the joins alone give %.3f: the test does not show what the moves do", worstJoin)
	}
}

// TestNoPositionIsAPeerFailure: a process that no longer stands at the
// position called is treated as a dead peer (evicted like one), while other
// refusals are not.
func TestNoPositionIsAPeerFailure(t *testing.T) {
	for _, c := range []struct {
		code int
		want bool
	}{{CodeNoPosition, true}, {CodeShuttingDown, true}, {CodeNotOwner, false}, {CodeOverloaded, false}} {
		if got := isPeerFailure(&RemoteError{Code: c.code, Message: "x"}); got != c.want {
			t.Errorf("isPeerFailure(code %d) = %v; want %v", c.code, got, c.want)
		}
	}
}
