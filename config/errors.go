package config

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error returned by Load and Validate wraps one of them
// (through a *KeyError when the problem belongs to a key).
var (
	// ErrSyntax: the file is not valid TOML or INI.
	ErrSyntax = errors.New("config: syntax error")
	// ErrUnknownKey: the file sets a key that does not exist.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrBadDuration: a duration is not a Go duration string ("1h30m", "500ms").
	ErrBadDuration = errors.New("config: bad duration")
	// ErrBadAddress: an address is not HOST:PORT with a port in 0..65535.
	ErrBadAddress = errors.New("config: bad address")
	// ErrMissingFile: a file the configuration names (TLS material, HMAC keys)
	// does not exist or is not a regular file.
	ErrMissingFile = errors.New("config: missing file")
	// ErrInvalid: a value is out of range or otherwise not allowed.
	ErrInvalid = errors.New("config: invalid value")
)

// KeyError is a problem with one configuration key. Its message is one line:
// "KEY: PROBLEM", or "FILE:LINE: KEY: PROBLEM" when it comes from a file.
type KeyError struct {
	File    string // file the key was read from; "" for Validate
	Line    int    // line in File; 0 if unknown
	Key     string // dotted key as in the TOML file, e.g. "api.max_conns"
	Problem string // what is wrong, e.g. "must be at least 1, have 0"
	Err     error  // the sentinel: ErrInvalid, ErrBadAddress, ...
}

func (e *KeyError) Error() string {
	msg := e.Problem
	if e.Key != "" {
		msg = e.Key + ": " + msg
	}
	switch {
	case e.File != "" && e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + msg
	case e.File != "":
		return e.File + ": " + msg
	}
	return msg
}

// Unwrap returns the sentinel.
func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(key string, sentinel error, problem string) *KeyError {
	return &KeyError{Key: key, Problem: problem, Err: sentinel}
}
