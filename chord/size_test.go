package chord_test

import (
	"math/big"
	"testing"

	"github.com/durachord/durachord/chord"
)

// evenRing returns the IDs of n nodes spaced evenly around the circle,
// starting at offset (a fraction of the circle in [0, 1)).
func evenRing(n int, offset float64) []chord.ID {
	circle := new(big.Int).Lsh(big.NewInt(1), 8*chord.IDBytes)
	start, _ := new(big.Float).Mul(new(big.Float).SetInt(circle), big.NewFloat(offset)).Int(nil)
	step := new(big.Int).Div(circle, big.NewInt(int64(n)))
	ids := make([]chord.ID, n)
	for i := range n {
		v := new(big.Int).Add(start, new(big.Int).Mul(step, big.NewInt(int64(i))))
		v.Mod(v, circle)
		v.FillBytes(ids[i][:])
	}
	return ids
}

// successorsOf returns the listLen nodes after ids[i] in ring order; in a
// ring smaller than the list it goes round again, past ids[i] itself.
func successorsOf(ids []chord.ID, i, listLen int) []chord.NodeInfo {
	var out []chord.NodeInfo
	for j := 1; j <= listLen; j++ {
		out = append(out, chord.NodeInfo{ID: ids[(i+j)%len(ids)], Addr: "127.0.0.1:1"})
	}
	return out
}

// TestEstimateRingSize: the estimate is exact while the successor list
// holds every other node (a node alone included), and on a ring larger
// than the list it is the ring's size for evenly spaced nodes, whether or
// not the list wraps past the top of the circle.
func TestEstimateRingSize(t *testing.T) {
	tests := []struct {
		name    string
		nodes   int
		offset  float64
		node    int
		listLen int
		want    float64
	}{
		{"alone", 1, 0, 0, 8, 1},
		{"two nodes", 2, 0.3, 0, 8, 2},
		{"ring smaller than the list", 5, 0.1, 3, 8, 5},
		{"ring one larger than the list", 9, 0, 0, 8, 9},
		{"large ring", 1000, 0, 17, 8, 1000},
		{"large ring, list wraps past zero", 1000, 0.9995, 998, 8, 1000},
		{"list of one", 64, 0.5, 63, 1, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := evenRing(tt.nodes, tt.offset)
			succs := successorsOf(ids, tt.node, tt.listLen)
			if got := chord.EstimateRingSize(ids[tt.node], succs, tt.listLen); got != tt.want {
				t.Errorf("EstimateRingSize(node %d of %d, list %d) = %v; want %v", tt.node, tt.nodes, tt.listLen, got, tt.want)
			}
		})
	}
}

// TestEstimateRingSizeRepeats: a list that names a node twice, or self
// (as the list of a node in a ring smaller than the list may), counts each
// other node once.
func TestEstimateRingSizeRepeats(t *testing.T) {
	ids := evenRing(3, 0.2)
	n := func(i int) chord.NodeInfo { return chord.NodeInfo{ID: ids[i], Addr: "127.0.0.1:1"} }
	succs := []chord.NodeInfo{n(1), n(2), n(0), n(1), n(2), n(0), n(1), n(2)}
	if got := chord.EstimateRingSize(ids[0], succs, 8); got != 3 {
		t.Fatalf("EstimateRingSize(%d entries naming 2 other nodes) = %v; want 3", len(succs), got)
	}
}
