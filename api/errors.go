package api

import "errors"

// Protocol violations, returned by Parse and ReadMessage (wrapped with
// details; compare with errors.Is).
var (
	// ErrShortSize: the size field is under 4, the length of the header.
	ErrShortSize = errors.New("api: message size under header size")
	// ErrSizeMismatch: the size does not fit the type (GET or FAILURE not
	// 36, PUT under 41, SUCCESS under 37), or Parse was given a buffer whose
	// length differs from the size field.
	ErrSizeMismatch = errors.New("api: message size does not match its type")
	// ErrUnknownType: the type is not one of PUT, GET, SUCCESS, FAILURE.
	ErrUnknownType = errors.New("api: unknown message type")
	// ErrUnexpectedType: a known type sent in the wrong direction (a reply
	// type from a client, a request type from a node) or a reply that
	// answers no request.
	ErrUnexpectedType = errors.New("api: unexpected message type")
)

var (
	// ErrValueSize: a value is empty or longer than the message allows.
	ErrValueSize = errors.New("api: value size out of range")
	// ErrNotFound: no live value exists for the key. A Service returns it
	// from Get; the server answers FAILURE; Client.Get returns it for a
	// FAILURE reply.
	ErrNotFound = errors.New("api: not found")
	// ErrServerClosed: Serve was called after, or returned because of,
	// Shutdown or Close.
	ErrServerClosed = errors.New("api: server closed")
	// ErrClientClosed: the client was closed, or its connection failed.
	ErrClientClosed = errors.New("api: client closed")
)
