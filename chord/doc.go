// Package chord implements the overlay: a Chord ring over a 256-bit identifier
// circle, with finger tables, successor lists, stabilisation, iterative lookups
// and the placement of records on owners and replicas.
//
// The package imports no sibling package of this module. It states what it
// consumes as small interfaces: Transport (calls to other nodes, implemented by
// package rpc and by the in-memory network in chord/chordtest) and the record
// and metadata stores (implemented by package store).
//
// # Node
//
// A Node (New) starts a ring (Create), joins one through bootstrap addresses
// (Join) or through the peers it saved in its MetaStore during an earlier run
// (Rejoin), then runs four periodic rounds until its context ends (Run):
// Stabilize, FixFingers, CheckPredecessor and ProbeEvicted. Each round is an
// exported method so that tests and the simulator can drive it directly.
// Start picks among Create, Join and Rejoin as a daemon does, retrying with a
// backoff, and settles a whole ring restarted at once: the node with the
// lowest ID among itself and its saved peers creates the ring, the others
// join it.
//
// Failures: a failed call makes the peer a suspect; maintenance rounds retry
// after ConfirmDelay, and only SuspectAfter consecutive failures evict it (from the
// successor list, the predecessor, the fingers and the lookup cache). Evicted
// peers are remembered (RememberSize, RememberFor) and ProbeEvicted asks a few
// of them, each round, for this node's successor in their ring: after a
// partition heals, a closer successor found that way is adopted and notified,
// and stabilisation zips the two rings into one.
//
// Lookups are iterative: the requesting node queries one peer at a time with
// chord.find_successor, each naming the owner or closer nodes, never more than
// MaxHops peers and never the same peer twice; suspects are tried last. Every
// answer is checked against the interval asked about (an owner named must
// follow the answering node with the identifier in between, closer nodes must
// lie between them) and ignored if it fails. Nodes named in replies go into a
// bounded cache (CacheSize) that later lookups route through, and the arcs the
// replies reveal (an owner named by its predecessor, a node's own
// predecessor, each pair of successive successors) into a bounded owner cache
// (CacheSize arcs, sorted, about the least recently used evicted), so that a node
// learns which node owns which identifiers.
//
// # Routing requests
//
// Route folds the lookup into a request about an identifier (the records
// layer's dht.get and dht.put): the request goes straight to the node this
// node believes owns the identifier (itself, a successor, or the owner of a
// cached arc), and a node that does not own it answers with a Referral, what
// it knows of the owner (see Refer), which Route checks and follows: the owner
// it names if it follows the referring node with the identifier in between,
// else its predecessor if that lies between the identifier and it (a node
// that joined there), else a lookup from what this node and the referral
// know. A node that cannot be reached is skipped and routed around. One hop
// limit (MaxHops calls, lookups and requests together) and LookupTimeout bound
// it all. When the owner cache lacks the arcs around the node asked, the
// request asks it for its neighbours (Neighbours), whose arcs are learned
// from the answer. In a warm ring a request costs one call.
//
// The last known successors, predecessor and fingers are saved as JSON under
// the meta key "chord.peers" whenever they change.
//
// # Wire methods
//
// Every call carries JSON (identifiers as 64 hex digits, NodeInfo as
// {"id": hex, "address": "host:port"}). Handlers reject malformed params with
// ErrBadRequest, and a node that left answers ErrShuttingDown. Nodes that have
// not joined answer find_successor, neighbours and notify with ErrNotReady.
//
//	chord.find_successor  params {"id": hex, "skip": [hex]?}
//	    result {"owner": NodeInfo?, "owner_is_self": bool?, "successors": [NodeInfo]?,
//	            "closer": [NodeInfo]?, "predecessor": NodeInfo?}
//	    "skip" (at most 64 IDs) names nodes the asking lookup found dead or
//	    suspects; the answer treats them as absent. When the answering node
//	    owns id (id in (predecessor, self]) it names itself as owner with
//	    owner_is_self and its successor list. When id lies in (self, s], s
//	    being its first successor not skipped, it names s and the successors
//	    after s. Deeper successor-list entries are never named as owner: they
//	    may be stale, so they are offered as closer nodes instead. Otherwise
//	    "closer" lists up to 8 known nodes strictly between itself and id,
//	    closest to id first.
//	    The same object is the Referral with which a node answers a routed
//	    request for an identifier it does not own.
//	chord.neighbours      params null
//	    result {"predecessor": NodeInfo or null, "successors": [NodeInfo]}
//	    (Neighbours; a routed request may ask its owner for them)
//	chord.ping            params null; result {}
//	chord.notify          params {"node": NodeInfo, "role": "successor"?}; result {}
//	    "node" must be the caller itself (the authenticated from ID). Without
//	    a role it becomes the predecessor if it lies between the current one
//	    and self. With role "successor" (sent by a node that just joined to
//	    its successor's old predecessor) it becomes the first successor if it
//	    lies between self and the current one.
//	chord.leave           params {"node": NodeInfo, "predecessor": NodeInfo or null,
//	                              "successors": [NodeInfo]}; result {}
//	    "node" must be the caller. A successor adopts "predecessor"; a
//	    predecessor splices "successors" into its list in place of the caller.
//	chord.status          params null; result Status
//	    {"id", "address", "predecessor" (or null), "successors", "fingers",
//	     "records": {"primary", "replica"}, "ready"}
//
// Other methods are served by handlers registered with Node.Handle.
package chord
