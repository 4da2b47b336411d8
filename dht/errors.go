package dht

import "errors"

var (
	// ErrNotFound: no live record for the key on any holder asked.
	ErrNotFound = errors.New("dht: record not found")
	// ErrInvalid: a request with a bad key, value or expiry.
	ErrInvalid = errors.New("dht: invalid record")
	// ErrNoOwner: no owner of the key took a PUT in time: none could be
	// found or reached, or the owner (this node too) could not get the
	// record onto its write quorum.
	ErrNoOwner = errors.New("dht: owner not reachable")
	// ErrNoQuorum: too few replica holders stored a PUT for it to be
	// acknowledged (see Config.WriteQuorum).
	ErrNoQuorum = errors.New("dht: too few holders stored the record")
)
