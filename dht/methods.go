package dht

// CallingMethods returns the calls whose handlers call other nodes before
// they answer: an owner's dht.put waits for its replica pushes (dht.store).
// A transport serves them on handler slots apart from the calls they wait
// for (rpc.ServerConfig.CallingMethods), so that a burst of PUTs on every
// node cannot hold all the slots while each waits for a slot on a peer.
func CallingMethods() []string { return []string{methodPut} }
