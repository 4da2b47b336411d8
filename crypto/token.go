package crypto

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"unicode"
)

// MinTokenLen is the shortest admin token LoadToken accepts, in bytes.
const MinTokenLen = 16

// Token is an admin bearer token: a secret shared between a node's admin
// server and the operator's tool.
type Token struct {
	secret []byte
}

// NewToken returns a new random token as text: 32 bytes from crypto/rand,
// base64url without padding (43 characters).
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoadToken reads a token file: its content without surrounding white
// space, at least MinTokenLen bytes, with no white space or control
// character inside (it travels in an HTTP header). The file must not be
// readable by group or others (ErrInsecureFile).
func LoadToken(path string) (*Token, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseToken(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseToken checks a token's text as LoadToken does.
func ParseToken(b []byte) (*Token, error) {
	b = bytes.TrimSpace(b)
	if len(b) < MinTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrInvalidToken, len(b), MinTokenLen)
	}
	for _, r := range string(b) {
		if r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) {
			return nil, fmt.Errorf("%w: holds white space or a character other than printable ASCII", ErrInvalidToken)
		}
	}
	return &Token{secret: bytes.Clone(b)}, nil
}

// String returns the token's text, to send it.
func (t *Token) String() string { return string(t.secret) }

// Equal reports whether s is the token, in time that does not depend on
// where they differ (both are hashed first, so not on their lengths either).
func (t *Token) Equal(s string) bool {
	a, b := sha256.Sum256(t.secret), sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
