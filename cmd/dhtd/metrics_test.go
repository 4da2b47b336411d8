package main

import (
	"fmt"
	"math/big"
	"slices"
	"testing"

	"github.com/durachord/durachord/chord"
)

// ringOf places nodes physical nodes of v positions each evenly around the
// circle, node i at the i-th, (i+nodes)-th, ... of the nodes·v points, and
// returns each node's views with successor lists of listLen.
func ringOf(nodes, v, listLen int) [][]positionView {
	type pos struct {
		info chord.NodeInfo
		node int
	}
	var all []pos
	step := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 8*chord.IDBytes), big.NewInt(int64(nodes*v)))
	for k := range nodes * v {
		var id chord.ID
		new(big.Int).Mul(step, big.NewInt(int64(k))).FillBytes(id[:])
		all = append(all, pos{chord.NodeInfo{ID: id, Addr: fmt.Sprintf("n%d", k%nodes)}, k % nodes})
	}
	slices.SortFunc(all, func(a, b pos) int { return a.info.ID.Cmp(b.info.ID) })
	views := make([][]positionView, nodes)
	for i, p := range all {
		var succs []chord.NodeInfo
		for j := 1; j <= listLen && j < len(all); j++ {
			succs = append(succs, all[(i+j)%len(all)].info)
		}
		views[p.node] = append(views[p.node], positionView{p.info, succs})
	}
	return views
}

// TestRingViewCountsPhysicalNodes: the ring gauges count nodes, not
// positions: exact while the lists of a node's positions cover the ring,
// estimated from their spacing (in nodes) beyond.
func TestRingViewCountsPhysicalNodes(t *testing.T) {
	for _, tc := range []struct {
		nodes, v, listLen int
		others            int
		size              float64
	}{
		{1, 1, 8, 0, 1},
		{4, 1, 8, 3, 4},
		{4, 4, 8, 3, 4},   // 16 positions: each list reaches the node's next position
		{5, 4, 3, 3, 5},   // each list of 3 stops short of the next position, 5 on: estimated
		{16, 4, 8, 8, 16}, // 64 positions: every list names the same 8 nodes; estimated
		{40, 1, 8, 8, 40}, // one position, a full list: estimated from its spacing
		{40, 4, 8, 8, 40},
	} {
		views := ringOf(tc.nodes, tc.v, tc.listLen)
		others, size := ringView(views[0], tc.listLen, tc.v)
		if others != tc.others || size != tc.size {
			t.Errorf("%d nodes at %d positions, lists of %d: ringView = %d others, size %v; want %d, %v",
				tc.nodes, tc.v, tc.listLen, others, size, tc.others, tc.size)
		}
	}
	if others, size := ringView(nil, 8, 4); others != 0 || size != 0 {
		t.Errorf("ringView(no positions) = %d, %v; want 0, 0", others, size)
	}
}
