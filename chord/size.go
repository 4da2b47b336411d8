package chord

import (
	"math"
	"math/big"
)

// RingSizeEstimate is this node's estimate of the number of nodes in the
// ring, from its successor list (EstimateRingSize).
func (n *Node) RingSizeEstimate() float64 {
	return EstimateRingSize(n.Self().ID, n.Successors(), n.cfg.SuccessorListLen)
}

// EstimateRingSize estimates the nodes in the ring of self from its
// successor list succs (in ring order) of at most listLen entries. While the
// list holds fewer distinct nodes than listLen, it holds every other node and
// the answer is exact: those nodes and self. Once it is full, its k nodes
// split the arc from self to the last of them into k gaps, and the estimate
// is k over the fraction of the circle that arc covers (identifiers are
// uniform, so on average the gaps are the same around the ring).
func EstimateRingSize(self ID, succs []NodeInfo, listLen int) float64 {
	seen := make(map[ID]bool, len(succs))
	var last ID
	for _, s := range succs {
		if s.ID == self || seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		last = s.ID
	}
	k := len(seen)
	if k < listLen {
		return float64(k + 1)
	}
	circle := new(big.Int).Lsh(big.NewInt(1), 8*IDBytes)
	span := new(big.Int).Sub(new(big.Int).SetBytes(last[:]), new(big.Int).SetBytes(self[:]))
	span.Mod(span, circle)
	// span > 0: last differs from self.
	est, _ := new(big.Float).Quo(
		new(big.Float).SetInt(new(big.Int).Mul(big.NewInt(int64(k)), circle)),
		new(big.Float).SetInt(span)).Float64()
	return math.Round(est)
}
