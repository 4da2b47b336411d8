package chord

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDBytes is the width of a ring identifier in bytes (a 256-bit circle).
const IDBytes = 32

// ID is a position on the 256-bit identifier circle, big-endian. Node IDs are
// the SHA-256 of the node certificate's public key; a key's position is the
// SHA-256 of the 32-byte key.
type ID [IDBytes]byte

// KeyPosition returns the ring position of a 32-byte DHT key.
func KeyPosition(key [32]byte) ID { return ID(sha256.Sum256(key[:])) }

// IsZero reports whether id is the all-zero identifier, which callers use to
// mean "any node" when dialling an address whose ID is not yet known.
func (id ID) IsZero() bool { return id == ID{} }

// String returns the identifier as 64 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for logs.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// MarshalText encodes the identifier as 64 hex digits (also used by JSON).
func (id ID) MarshalText() ([]byte, error) {
	b := make([]byte, hex.EncodedLen(IDBytes))
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText decodes 64 hex digits.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseID decodes an identifier written as 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDBytes {
		return id, fmt.Errorf("%w: identifier %q: want %d hex digits, have %d", ErrBadRequest, s, 2*IDBytes, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: identifier %q: %v", ErrBadRequest, s, err)
	}
	return id, nil
}

// NodeInfo names a node: its ring identifier and the address its peers dial.
type NodeInfo struct {
	ID   ID     `json:"id"`
	Addr string `json:"address"`
}

// String returns "shortid@address" for logs.
func (n NodeInfo) String() string { return n.ID.Short() + "@" + n.Addr }
