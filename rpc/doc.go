// Package rpc carries chord calls between nodes: JSON-RPC 2.0 over TLS 1.3 with
// mutual certificate authentication against the cluster CA, each message in
// a length-prefixed frame that also carries an HMAC-SHA256 under the cluster
// keyring. Client implements chord.Transport; Server serves a chord.Handler.
//
// # Frames
//
// Every message, in both directions, including the hello exchange, is one
// frame:
//
//	offset  width  field
//	0       4      length: u32 big-endian, the number of bytes that follow (32 + len(body))
//	4       32     mac: HMAC-SHA256(key, body), key = the keyring's first key
//	36      n      body: one JSON value (UTF-8)
//
// The reader checks 33 <= length <= MaxFrameSize (default 4 MiB) before it
// reads or allocates anything more; a violation closes the connection. The
// body is read in step with the bytes arriving, so a peer announcing a large
// frame holds no more memory than it actually sends. A frame whose mac
// verifies under no key of the keyring (compared with hmac.Equal) is dropped
// and the connection is closed; the event is counted and logged. The mac
// covers the body only: TLS already protects the order and integrity of the
// stream, the mac proves the sender holds the cluster key.
//
// # Connection set-up
//
// The client dials TCP, completes a TLS 1.3 handshake (crypto.Identity's
// ClientConfig and ServerConfig: both sides present certificates of the
// cluster CA; the client checks that the server's certificate hashes to the
// node ID it expects, unless it dials an address with an unknown ID), then
// sends a hello frame and waits for the server's:
//
//	client: {"protocol":"durachord-rpc","version":1}
//	server: {"protocol":"durachord-rpc","version":1}
//	   or:  {"protocol":"durachord-rpc","version":1,"error":{"code":1006,"message":"..."}}
//
// The server accepts exactly its own ProtocolVersion; otherwise it replies
// with the error form (code chord.CodeProtocol) and closes the connection,
// and the client's call fails with an error wrapping chord.ErrProtocol. The
// TLS handshake and the hello exchange together must finish within the
// server's HandshakeTimeout (counted from the connection's first byte, which
// must come within FirstByteTimeout) and the client's DialTimeout.
//
// The server keeps MaxConns and MaxConnsPerAddress (internal/netutil's
// Limiter): a new connection beyond a limit takes the place of the connection
// idle longest (not in its handshake, no call being handled) among those
// counting against it, and is closed at once when none is idle. Before the
// body of a request frame of more than 4 KiB is read, its length is taken from
// a byte budget of MaxRequestBytes, given back once the request is answered;
// while the budget is spent the connection is not read. The CallingMethods,
// recognised by the method name at the start of the body, have a budget of
// their own: their handlers hold their frame while they wait for calls to
// other nodes, which take from the other budget, so the two cannot wait on
// each other.
//
// # Calls
//
// After the hello, frames carry JSON-RPC 2.0 requests (client to server) and
// responses (server to client), each body one JSON-RPC 2.0 object:
//
//	{"jsonrpc":"2.0","id":7,"method":"dht.get","params":{"key":"…"},"meta":{"timeout_ms":4999}}
//	{"jsonrpc":"2.0","id":7,"result":{"key":"…","value":"…",…}}
//	{"jsonrpc":"2.0","id":7,"error":{"code":1003,"message":"…"}}
//
// A connection carries any number of concurrent calls, matched by id (the
// client's are numbers; the server echoes whatever id it was sent).
// Requests may carry a non-standard member "meta": "timeout_ms" is the time
// the caller still waits, which bounds the server's handler context
// (together with ServerConfig.HandlerTimeout); "scalar_params":true says
// that params is a one-element array around args that are neither an object
// nor an array (JSON-RPC 2.0 params are structured), and the handler gets
// the element. The params a handler gets are part of a reused frame
// buffer: valid until the handler returns (decode them, do not keep them).
// Notifications (no id) are ignored. A handler that panics is
// answered with chord.ErrInternal and logged; the node keeps running.
// Errors travel as JSON-RPC error objects whose code is chord.ErrorCode of
// the handler's error; the client turns them back into *chord.RemoteError,
// for which errors.Is finds the same sentinel. A body that is not such an
// object is refused as a malformed frame (reason "frame") and the
// connection closed.
//
// Each message is encoded once: the envelope is written by hand around the
// args or result, which encoding/json writes straight into the frame
// buffer; and decoded once: a small scanner checks the envelope and finds
// params or result, which only the handler or the caller decodes. Frames
// queued on one connection leave together: a writer per connection drains
// the queue into one buffer and flushes it when the queue is empty, one TLS
// record and one write for the batch (up to 16 KiB).
//
// A pooled connection on which three calls in a row time out with nothing
// at all coming back is dropped (its pending calls fail) and the next call
// dials a new one: a peer that accepts connections but answers nothing does
// not pile up waiting calls.
//
// # Refusals and the errors a caller sees
//
//   - The peer cannot be dialled, the connection breaks, or the peer refused
//     our certificate or our HMAC: chord.ErrUnreachable.
//   - The peer's certificate is not from the cluster CA, or does not hash to
//     the expected node ID: chord.ErrIdentityMismatch (a certificate from
//     another CA proves no identity at all, so it is a mismatch too).
//   - Protocol version refused: chord.ErrProtocol.
//   - The server runs MaxHandlers records handlers already: the call waits
//     for a slot within its deadline, behind at most 4*MaxHandlers waiting
//     calls; when the queue is full or the deadline passes it is answered
//     with chord.ErrOverloaded (the caller may retry). Ring calls (chord.*)
//     have slots of their own, so that stabilisation goes on under load.
//
// Refusals are logged at Warn with the remote address, at most once a minute
// per source address, and counted in
// durachord_rpc_rejected_total{reason} with reason "tls" (handshake failed:
// no or foreign certificate), "hmac", "protocol", "identity" (expected node
// ID not proved) or "frame" (oversized or malformed frame).
//
// # Metrics
//
// durachord_rpc_calls_total{method}, durachord_rpc_call_errors_total{method},
// durachord_rpc_call_duration_seconds{method} (client);
// durachord_rpc_handler_duration_seconds{method} (server; unknown methods
// are labelled "unknown"), durachord_rpc_overloaded_total,
// durachord_rpc_rejected_total{reason} (both sides),
// durachord_rpc_client_connections, durachord_rpc_server_connections;
// durachord_rpc_connections_refused_total{reason},
// durachord_rpc_connections_evicted_total{reason},
// durachord_rpc_first_byte_timeouts_total, durachord_rpc_request_bytes{class}
// and durachord_rpc_request_bytes_waits_total{class} (server).
// A Client and a Server given the same Registerer share these collectors.
package rpc
