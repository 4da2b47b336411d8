// Package api implements the client protocol of a durachord node (the "DHT
// module" protocol of the IN2194 course): the message codec, a server that
// serves it on a net.Listener in front of a Service, and a small Go client.
//
// # Wire format
//
// Every message, in both directions, starts with a 4-byte header; all integers
// are big-endian:
//
//	offset  width  field
//	0       2      size: the whole message length in bytes, header included
//	2       2      type: 650 PUT, 651 GET, 652 SUCCESS, 653 FAILURE
//
// The body after the header:
//
//	PUT (650), client to node, size 41..65535:
//	  4   2   TTL in seconds (0: the node's default)
//	  6   1   replication (0: the node's default)
//	  7   1   reserved: ignored when read, written as 0
//	  8   32  key
//	  40  ..  value, 1..65495 bytes
//	GET (651), client to node, size exactly 36:
//	  4   32  key
//	SUCCESS (652), node to client, size 37..65535:
//	  4   32  key
//	  36  ..  value, 1..65499 bytes
//	FAILURE (653), node to client, size exactly 36:
//	  4   32  key
//
// A message whose size is under 4, whose size does not fit its type (GET or
// FAILURE not 36, PUT under 41, SUCCESS under 37) or whose type is unknown is
// a protocol violation. ReadMessage checks the header against these rules
// before it reads (or allocates for) the body.
//
// # Behaviour of the server
//
// One connection carries any number of pipelined requests. A PUT gets no
// reply, ever. Every GET gets exactly one reply, SUCCESS or FAILURE (absent,
// expired, not found within Config.RequestTimeout, or any other Service
// error), carrying the request's key. Replies may come in any order; each is
// written whole by one Write call (several whole replies may share one) and
// never interleaves with another.
//
// Read-your-writes on one connection: a request for key k waits until every
// earlier PUT of k on the same connection has completed, so a GET sent after
// a PUT of k sees that value (or a newer one), and two PUTs of k are applied in
// the order they were sent. Requests for other keys do not wait: a slow PUT of
// one key does not stall GETs of another.
//
// A protocol violation (the size and type rules above, a node-to-client type
// sent by a client, or a message not completed within Config.ReadTimeout of its
// first byte) closes the connection at once without a reply; it is counted in
// durachord_api_violations_total{reason} and logged at debug level with the
// remote address. A connection with no request in progress and none received
// for Config.IdleTimeout, or a new one that sends nothing for
// Config.FirstByteTimeout, is closed. A new connection beyond Config.MaxConns,
// or beyond Config.MaxConnsPerAddress from its source address, takes the
// place of the connection idle longest among those counting against that
// limit, and is accepted and closed at once when none is idle (internal/
// netutil's Limiter). At most Config.MaxInFlight requests (GETs and PUTs) are
// in progress per connection, a GET until its reply is written, and at most
// Config.MaxRequestBytes of PUT messages over all connections (and
// Config.MaxRequestBytesPerAddress over those of one source address), each
// until it is carried out; at any of these limits the server stops reading
// from the connection (back-pressure) and never drops a request.
//
// Server.Shutdown stops accepting, stops reading new messages, serves the
// requests already read, writes their replies and then closes each
// connection; Server.Close closes everything at once.
package api
