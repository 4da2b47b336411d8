package chord

import (
	"container/list"
	"slices"
)

// nodeCache is a bounded set of nodes learned from lookup replies, evicting the
// least recently learned. Not safe for concurrent use (the Node's mutex guards
// it).
type nodeCache struct {
	max   int
	order *list.List // of NodeInfo, most recent at the front
	byID  map[ID]*list.Element
}

func newNodeCache(max int) *nodeCache {
	return &nodeCache{max: max, order: list.New(), byID: make(map[ID]*list.Element)}
}

func (c *nodeCache) add(n NodeInfo) {
	if c.max == 0 || n.Addr == "" {
		return
	}
	if e, ok := c.byID[n.ID]; ok {
		e.Value = n
		c.order.MoveToFront(e)
		return
	}
	c.byID[n.ID] = c.order.PushFront(n)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(NodeInfo).ID)
	}
}

func (c *nodeCache) remove(id ID) {
	if e, ok := c.byID[id]; ok {
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

func (c *nodeCache) each(fn func(NodeInfo)) {
	for e := c.order.Front(); e != nil; e = e.Next() {
		fn(e.Value.(NodeInfo))
	}
}

func (c *nodeCache) reset() {
	c.order.Init()
	clear(c.byID)
}

// ownerCache is a bounded set of arcs learned from lookup replies and
// referrals: each says that owner is responsible for the identifiers in
// (pred, owner]. It is kept sorted by owner so that the arc of an identifier
// is found by one binary search, and evicts about the least recently used
// arc (see evict). Not safe for concurrent use (the Node's mutex guards it).
type ownerCache struct {
	max  int
	arcs []ownerArc // sorted by owner.ID
	tick uint64     // the use counter, for eviction
}

type ownerArc struct {
	owner NodeInfo
	pred  ID
	used  uint64
}

func newOwnerCache(max int) *ownerCache { return &ownerCache{max: max} }

// search returns the index of the first arc whose owner is at or after id,
// or len(arcs) if there is none.
func (c *ownerCache) search(id ID) (int, bool) {
	return slices.BinarySearchFunc(c.arcs, id, func(a ownerArc, id ID) int { return a.owner.ID.Cmp(id) })
}

// add records that owner follows pred, replacing what was known of owner.
func (c *ownerCache) add(owner NodeInfo, pred ID) {
	if c.max == 0 {
		return
	}
	c.tick++
	i, found := c.search(owner.ID)
	if found {
		c.arcs[i] = ownerArc{owner: owner, pred: pred, used: c.tick}
		return
	}
	c.arcs = slices.Insert(c.arcs, i, ownerArc{owner: owner, pred: pred, used: c.tick})
	if len(c.arcs) > c.max {
		c.evict()
	}
}

// evictSample is the number of arcs evict compares: the least recently used
// of a sample, as Redis approximates LRU, so that a full cache costs no scan
// of every arc per arc learned.
const evictSample = 8

// evict removes the least recently used arc of a sample (of every arc when
// there are few).
func (c *ownerCache) evict() {
	oldest := 0
	if len(c.arcs) <= evictSample {
		for j, a := range c.arcs {
			if a.used < c.arcs[oldest].used {
				oldest = j
			}
		}
	} else {
		x := c.tick*0x9e3779b97f4a7c15 | 1 // a cheap pseudo-random sequence
		oldest = -1
		for range evictSample {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			j := int(x % uint64(len(c.arcs)))
			if oldest < 0 || c.arcs[j].used < c.arcs[oldest].used {
				oldest = j
			}
		}
	}
	c.arcs = slices.Delete(c.arcs, oldest, oldest+1)
}

// owner returns the owner of the arc that holds id, the index of its arc,
// and whether one does. The first arc at or after id (the circle wraps) is
// the only one that can: arcs end at their owner.
func (c *ownerCache) owner(id ID) (NodeInfo, int, bool) {
	if len(c.arcs) == 0 {
		return NodeInfo{}, 0, false
	}
	i, _ := c.search(id)
	if i == len(c.arcs) {
		i = 0
	}
	a := &c.arcs[i]
	if !id.InHalfOpen(a.pred, a.owner.ID) {
		return NodeInfo{}, 0, false
	}
	c.tick++
	a.used = c.tick
	return a.owner, i, true
}

// following returns up to max owners of the arcs that follow the arc at
// index i without a gap (each begins where the one before it ends): the
// owner's successors, as far as the cache knows them.
func (c *ownerCache) following(i, max int) []NodeInfo {
	var out []NodeInfo
	prev := c.arcs[i].owner.ID
	for k := 1; k < len(c.arcs) && len(out) < max; k++ {
		a := c.arcs[(i+k)%len(c.arcs)]
		if a.pred != prev {
			break
		}
		out = append(out, a.owner)
		prev = a.owner.ID
	}
	return out
}

// knowsRun reports whether the arc owned by id is known and so are the k
// arcs that follow it (fewer if the cache holds fewer).
func (c *ownerCache) knowsRun(id ID, k int) bool {
	i, found := c.search(id)
	if !found {
		return false
	}
	k = min(k, len(c.arcs)-1)
	return len(c.following(i, k)) == k
}

// remove forgets the arc owned by id.
func (c *ownerCache) remove(id ID) {
	if i, found := c.search(id); found {
		c.arcs = slices.Delete(c.arcs, i, i+1)
	}
}

func (c *ownerCache) reset() { c.arcs = c.arcs[:0] }
