package chord

import (
	"context"
	"encoding/json"
)

// Transport carries calls from this node to other nodes. Implementations: the
// rpc package (JSON-RPC 2.0 over mutual TLS) and chordtest (in-memory).
//
// Call invokes method on node `to` with args encoded as JSON and decodes the
// result into reply (a pointer; nil discards the result). Rules every
// implementation follows (checked by package transporttest):
//
//   - If to.ID is not zero, the peer must prove that identity; otherwise Call
//     fails with ErrIdentityMismatch. A zero to.ID accepts any authenticated
//     peer (used to dial bootstrap addresses).
//   - A peer that cannot be reached fails with ErrUnreachable.
//   - The call ends when ctx ends (errors.Is(err, ctx.Err()) holds); without a
//     deadline on ctx the implementation applies its own default deadline.
//   - An error returned by the remote Handler comes back as an error for which
//     errors.Is(err, sentinel) holds for the sentinel with the same code (see
//     ErrorCode); an unknown method gives ErrUnknownMethod.
//   - Call is safe for concurrent use; concurrent calls to one peer share its
//     connection.
type Transport interface {
	Call(ctx context.Context, to NodeInfo, method string, args, reply any) error
}

// Handler serves the calls that reach this node. from is the caller's
// authenticated identity (from its certificate). params is the JSON encoding of
// the caller's args. The result is encoded as JSON for the caller.
type Handler interface {
	ServeRPC(ctx context.Context, from ID, method string, params json.RawMessage) (result any, err error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, from ID, method string, params json.RawMessage) (any, error)

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, from ID, method string, params json.RawMessage) (any, error) {
	return f(ctx, from, method, params)
}
