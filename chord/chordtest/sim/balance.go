package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/durachord/durachord/chord"
)

// The balance of virtual nodes (-vnodes): N nodes join one at a time, each
// choosing its positions with chord.ChoosePositions from the whole ring (what
// a node's walk sees), keeping position 0; then the share of the circle each
// node owns, and the records it holds as owner (primary) and as owner or
// holder (primary plus replica, the first replication distinct nodes from a
// key's owner), as the most loaded node's multiple of the mean, worst over
// seeds. Records are taken as spread evenly over the circle, so a node's
// records are its arcs' length (the expected load of many records).

// balanceRow is one ring size's worst figures over the seeds.
type balanceRow struct {
	n                      int
	share, primary, holder float64
}

// positionsOf returns the candidate positions of a node whose public key is
// key, as crypto.PositionID derives them from a certificate.
func positionsOf(key []byte, k int) []chord.ID {
	out := make([]chord.ID, k)
	for i := range k {
		if i == 0 {
			out[i] = chord.ID(sha256.Sum256(key))
			continue
		}
		out[i] = chord.ID(sha256.Sum256(binary.BigEndian.AppendUint32(slices.Clone(key), uint32(i))))
	}
	return out
}

func maxOverMean(m map[string]float64) float64 {
	mx, sum := 0.0, 0.0
	for _, v := range m {
		mx = math.Max(mx, v)
		sum += v
	}
	return mx / (sum / float64(len(m)))
}

// balance runs the -vnodes measurement for n nodes of v positions.
func balance(n, v, repl, seeds int, seed uint64) balanceRow {
	row := balanceRow{n: n}
	for s := range seeds {
		rng := rand.New(rand.NewPCG(seed+uint64(s), 0x76))
		var ring []chord.NodeInfo
		for i := range n {
			key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
			addr := fmt.Sprintf("node-%d", i)
			cands := positionsOf(key, 256)
			for _, c := range chord.ChoosePositions(ring, addr, cands, []int{0}, v) {
				ring = append(ring, chord.NodeInfo{ID: cands[c], Addr: addr})
			}
		}
		p, h := chord.Loads(ring, repl)
		row.share = math.Max(row.share, maxOverMean(p)) // a node's primary load is its share
		row.primary = row.share
		row.holder = math.Max(row.holder, maxOverMean(h))
	}
	return row
}

func printBalance(sizes []int, v, repl, seeds int, seed uint64) {
	fmt.Printf("# virtual nodes: %d positions per node (position 0 kept, the others by chord.ChoosePositions), sequential joins, worst over %d seeds\n", v, seeds)
	fmt.Printf("%-6s %12s %14s %22s  %-12s %s\n", "N", "share", "primary", fmt.Sprintf("primary+replica (r=%d)", repl), "target", "result")
	for _, n := range sizes {
		r := balance(n, v, repl, seeds, seed)
		ok := r.share <= 1.25 && r.holder <= 1.25
		res := "PASS"
		if !ok {
			res = "MISS"
		}
		fmt.Printf("%-6d %12.3f %14.3f %22.3f  %-12s %s\n", n, r.share, r.primary, r.holder, "<=1.25", res)
	}
}
