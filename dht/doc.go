// Package dht keeps records on the ring: it is the service behind the client
// API. A PUT goes to the key's owner, which assigns the version, stores the
// record durably and pushes it to the next replication-1 successors before it
// answers; a GET asks the owner and falls back to the replica holders. Both
// are routed (chord.Node.Route): sent straight to the node this node believes
// owns the key, which answers a request for a key it does not own with a
// referral that the sender follows, so that in a warm ring a GET or a PUT is
// one call (the owner's replica pushes apart). A
// periodic maintenance round, also started by every ring change, keeps records
// where they belong: it promotes replicas in the node's own arc, hands records
// outside its arc to their owner (keeping them as replicas only while the node is
// inside their replication window), and compares digests with each replica
// holder so that only what differs crosses the network.
//
// # Calls between nodes
//
// All calls use chord.Transport; parameters and results are JSON objects.
// Keys (the 32-byte DHT keys, not their positions) and positions are 64 hex
// digits, values base64, expiry unix nanoseconds, versions {clock, node}.
// A record is {key, value, expiry, version, replication}.
//
//	dht.put      {key, value, expiry, replication, route?, neighbours?}
//	                                                    -> {version, neighbours?} | {referral}
//	                                                                           owner assigns the version and replicates
//	dht.get      {key, route?, neighbours?}             -> record + {neighbours?} | {referral} | not found
//	dht.store    {records}                              -> {stored}         put-if-newer of each record; the receiver
//	                                                                           flags a record primary when it owns it
//	dht.range    {from, to, after, limit}               -> {records, next}  records in the arc (from, to], paged
//	dht.digest   {from, to, min_replication}            -> {buckets}        per top-byte bucket: count and XOR of
//	                                                                           the first 8 bytes of SHA-256(position || version)
//	dht.versions {from, to, min_replication, buckets, after, limit} -> {entries, next}
//	dht.fetch    {keys}                                 -> {records, rest}  live records among keys; rest: keys
//	                                                                           left for another call (size cap)
//	dht.recheck  {}                                     -> {}               the receiver left the caller's replication
//	                                                                           window: it runs a maintenance round soon
//
// Without route, dht.put is refused with chord.ErrNotOwner by a node that does
// not own the key, and dht.get answers from the receiver's store, owner or
// replica holder alike (the holders' fallback reads). With route, a node that
// does not own the key answers {referral}: a chord.Referral, what
// chord.find_successor would answer for the key's position. neighbours asks
// the owner to add its chord.Neighbours (predecessor and successor list) to
// the reply, from which the sender learns the arcs around it.
//
// A digest or version list covers the records whose requested replication is
// at least min_replication: the holder at index i of the owner's successor list
// holds the records whose replication is at least i+2, so owner and holder
// compare like with like.
//
// Versions are totally ordered (clock, then node); a node's clock is a hybrid
// logical clock: wall time in nanoseconds, strictly increasing per node, and
// always above the version it replaces.
package dht
