package chord

import "testing"

func arcID(b byte) ID { return ID{b, 0x5a} }

func arcNode(b byte) NodeInfo { return NodeInfo{ID: arcID(b), Addr: "n"} }

// TestOwnerCache: the arc of an identifier is found across zero and at its
// ends, the arcs after an owner chain up to a gap, and the least recently used
// arc goes first.
func TestOwnerCache(t *testing.T) {
	c := newOwnerCache(3)
	c.add(arcNode(0x10), arcID(0xf0)) // wraps around zero
	c.add(arcNode(0x30), arcID(0x10))
	c.add(arcNode(0x90), arcID(0x50)) // a gap before it: (0x30, 0x50] unknown
	for _, tc := range []struct {
		id    ID
		owner byte // 0: none known
	}{
		{arcID(0xf8), 0x10},    // after the highest owner: wraps
		{ID{}, 0x10},           // zero
		{arcID(0x10), 0x10},    // the owner's own ID (closed end)
		{arcID(0xf0), 0},       // the predecessor's ID (open end)
		{ID{0xf0, 0x5b}, 0x10}, // just after the predecessor
		{arcID(0x20), 0x30},    // inside
		{arcID(0x40), 0},       // in the gap
		{arcID(0x50), 0},       // the gap's end
		{ID{0x50, 0x5b}, 0x90}, // just after it
		{arcID(0xa0), 0},       // after the last arc, before the wrapping one
	} {
		o, _, ok := c.owner(tc.id)
		if ok != (tc.owner != 0) || (ok && o.ID != arcID(tc.owner)) {
			t.Errorf("owner(%s) = %v, %v; want %x", tc.id.Short(), o, ok, tc.owner)
		}
	}
	i, _ := c.search(arcID(0x10))
	if got := c.following(i, 5); len(got) != 1 || got[0].ID != arcID(0x30) {
		t.Errorf("following(0x10) = %v; want [0x30] (a gap after it)", got)
	}
	if !c.knowsRun(arcID(0x10), 1) || c.knowsRun(arcID(0x10), 2) || c.knowsRun(arcID(0x50), 0) {
		t.Errorf("knowsRun disagrees with the arcs (0xf0,0x10], (0x10,0x30], (0x50,0x90]")
	}
	// 0x30 is the least recently used now (0x10 and 0x90 were found
	// since): a fourth arc evicts it.
	c.owner(arcID(0x05))
	c.owner(arcID(0x60))
	c.add(arcNode(0xc0), arcID(0x90))
	if _, _, ok := c.owner(arcID(0x20)); ok {
		t.Errorf("owner(0x20) still known after the eviction of the least recently used arc")
	}
	for _, b := range []byte{0x05, 0x60, 0xb0} {
		if _, _, ok := c.owner(arcID(b)); !ok {
			t.Errorf("owner(%x) forgotten; want only 0x30's arc evicted", b)
		}
	}
	c.remove(arcID(0x90))
	if _, _, ok := c.owner(arcID(0x60)); ok {
		t.Errorf("owner(0x60) known after remove(0x90)")
	}
}
