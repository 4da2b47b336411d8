package chord

import (
	"errors"
)

// Sentinel errors. Those with a wire code (see ErrorCode) cross the network and
// come back to the caller as the same sentinel.
var (
	// ErrUnreachable: the peer could not be reached (dial, TLS or I/O failure).
	// Local only.
	ErrUnreachable = errors.New("chord: peer unreachable")
	// ErrIdentityMismatch: the peer's certificate does not hash to the ID the
	// caller expected. Local only.
	ErrIdentityMismatch = errors.New("chord: peer identity mismatch")
	// ErrClosed: the local node or transport has been closed. Local only.
	ErrClosed = errors.New("chord: closed")

	ErrUnknownMethod = errors.New("chord: unknown method")
	ErrBadRequest    = errors.New("chord: bad request")
	ErrOverloaded    = errors.New("chord: peer overloaded")
	ErrShuttingDown  = errors.New("chord: node shutting down")
	ErrNotFound      = errors.New("chord: not found")
	ErrNotOwner      = errors.New("chord: not the owner")
	ErrNotReady      = errors.New("chord: node not ready")
	ErrProtocol      = errors.New("chord: protocol version not supported")
	ErrInternal      = errors.New("chord: internal error")
	// ErrNoPosition: a call named a position that the node at that address
	// does not stand at (any more): the caller's view is stale.
	ErrNoPosition = errors.New("chord: no such position at this node")
)

// Wire codes. -32601 and -32602 are JSON-RPC 2.0's own; the rest sit in the
// range JSON-RPC leaves to applications.
const (
	CodeInternal      = -32603
	CodeUnknownMethod = -32601
	CodeBadRequest    = -32602
	CodeOverloaded    = 1001
	CodeShuttingDown  = 1002
	CodeNotFound      = 1003
	CodeNotOwner      = 1004
	CodeNotReady      = 1005
	CodeProtocol      = 1006
	CodeNoPosition    = 1007
)

var codeSentinels = []struct {
	code int
	err  error
}{
	{CodeUnknownMethod, ErrUnknownMethod},
	{CodeBadRequest, ErrBadRequest},
	{CodeOverloaded, ErrOverloaded},
	{CodeShuttingDown, ErrShuttingDown},
	{CodeNotFound, ErrNotFound},
	{CodeNotOwner, ErrNotOwner},
	{CodeNotReady, ErrNotReady},
	{CodeProtocol, ErrProtocol},
	{CodeNoPosition, ErrNoPosition},
	{CodeInternal, ErrInternal},
}

// ErrorCode returns the wire code for err: the code of the first sentinel that
// errors.Is finds in it, or CodeInternal.
func ErrorCode(err error) int {
	for _, cs := range codeSentinels {
		if errors.Is(err, cs.err) {
			return cs.code
		}
	}
	return CodeInternal
}

// RemoteError is an error returned by a peer's Handler, as the caller sees it.
// errors.Is(remoteErr, sentinel) holds for the sentinel of its Code.
type RemoteError struct {
	Code    int
	Message string
}

// Error returns the remote message.
func (e *RemoteError) Error() string { return "remote: " + e.Message }

// Unwrap returns the sentinel for the error's code.
func (e *RemoteError) Unwrap() error { return ErrorForCode(e.Code) }

// ErrorForCode returns the sentinel for a wire code (ErrInternal when the code
// is unknown).
func ErrorForCode(code int) error {
	for _, cs := range codeSentinels {
		if cs.code == code {
			return cs.err
		}
	}
	return ErrInternal
}

// Sentinels of the Node (local only: they never cross the wire as such).
var (
	// ErrConfig: a Config failed Validate.
	ErrConfig = errors.New("chord: invalid config")
	// ErrLookupFailed: a lookup ran out of candidates or hit its hop limit.
	ErrLookupFailed = errors.New("chord: lookup failed")
	// ErrJoinFailed: no bootstrap or remembered peer could be joined through.
	ErrJoinFailed = errors.New("chord: join failed")
	// ErrNoPeers: Rejoin found no peers saved in the meta store.
	ErrNoPeers = errors.New("chord: no saved peers")
)
