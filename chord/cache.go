package chord

import "container/list"

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
