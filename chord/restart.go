package chord

// SavedPeers returns the peers this node saved in its meta store during an
// earlier run (successors, predecessor and fingers), or none.
func (n *Node) SavedPeers() ([]NodeInfo, error) {
	return n.loadPeers()
}

// RememberSaved adds the saved peers to the peers that ProbeEvicted asks.
// A node that had to start a ring of its own after a restart (its saved peers
// were not up yet) thereby merges into the ring it knew once they are.
func (n *Node) RememberSaved() error {
	peers, err := n.loadPeers()
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range peers {
		n.rememberLocked(p)
	}
	return nil
}
