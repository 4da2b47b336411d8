// Package netutil holds what the client API server (api) and the peer RPC
// server (rpc) share about accepting connections:
//
//   - Serve, the accept loop. It retries the errors a busy or short-of-file-
//     descriptors machine returns (EMFILE, ENFILE, ENOBUFS, ENOMEM,
//     ECONNABORTED, ECONNRESET, timeouts) with a delay that starts at 5 ms
//     and doubles up to 1 s, as net/http's Server.Serve does, and returns
//     any other error.
//   - Limiter, the connection limits: a total and one per source address
//     (an IPv4 address, or the /64 of an IPv6 one). When a limit is reached
//     the oldest idle connection that counts against it is closed to make
//     room, so that a flood of idle connections from one address costs that
//     address its own oldest connections and nobody else anything. A new
//     connection is refused only when every connection that counts against
//     the limit is busy. Refusals are counted and logged at most once per
//     interval per address.
//   - Budget, a bound in bytes on what requests read from the network hold
//     until they are answered. A reader acquires the size of a message from
//     it before reading the message's body, so that over budget reading
//     stops (back-pressure) and nothing is dropped.
//   - FirstByte, the deadline for a new connection's first byte.
package netutil
