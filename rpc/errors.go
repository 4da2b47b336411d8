package rpc

import "errors"

// Sentinel errors.
var (
	// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
	ErrServerClosed = errors.New("rpc: server closed")
	// ErrFrameTooLarge: a frame's length prefix exceeds the configured maximum.
	ErrFrameTooLarge = errors.New("rpc: frame too large")
	// ErrBadFrame: a frame is shorter than its MAC plus one byte of body, or
	// its body is not the JSON expected.
	ErrBadFrame = errors.New("rpc: malformed frame")
	// ErrBadMAC: a frame's HMAC does not verify under any keyring key.
	ErrBadMAC = errors.New("rpc: frame HMAC does not verify")
)
