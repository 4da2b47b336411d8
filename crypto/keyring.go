package crypto

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"
)

// MinHMACKeyBytes is the shortest HMAC key a keyring accepts.
const MinHMACKeyBytes = 32

// MACSize is the length of an HMAC-SHA256 tag.
const MACSize = sha256.Size

// Keyring is a set of HMAC-SHA256 keys: the first signs, every key verifies.
// It is safe for concurrent use; Replace swaps its keys atomically while it is
// in use.
type Keyring struct {
	keys atomic.Pointer[[][]byte] // never nil after construction, never empty
}

// NewKeyring returns a keyring of copies of keys, the first signing. It fails
// with ErrNoKeys if there is none and ErrInvalidKey if a key is shorter than
// MinHMACKeyBytes.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	cp := make([][]byte, len(keys))
	for i, k := range keys {
		if len(k) < MinHMACKeyBytes {
			return nil, fmt.Errorf("%w: key %d has %d bytes, want at least %d", ErrInvalidKey, i+1, len(k), MinHMACKeyBytes)
		}
		cp[i] = bytes.Clone(k)
	}
	kr := &Keyring{}
	kr.keys.Store(&cp)
	return kr, nil
}

// LoadKeyring reads a keys file: one base64 key per line, blank lines and
// lines starting with '#' ignored, at least one key, each at least
// MinHMACKeyBytes decoded. The file must not be readable by group or others.
func LoadKeyring(path string) (*Keyring, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	kr, err := ParseKeyring(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// ParseKeyring reads keys in the format of LoadKeyring from r.
func ParseKeyring(r io.Reader) (*Keyring, error) {
	var keys [][]byte
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w (want one base64 key per line)", ErrNoKeys)
	}
	return NewKeyring(keys...)
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidKey)
	}
	if len(k) < MinHMACKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrInvalidKey, len(k), MinHMACKeyBytes)
	}
	return k, nil
}

// NewHMACKey returns a new random key of MinHMACKeyBytes bytes, base64
// encoded as a keys file line holds it.
func NewHMACKey() (string, error) {
	k := make([]byte, MinHMACKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate HMAC key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// Sign returns HMAC-SHA256(first key, msg).
func (kr *Keyring) Sign(msg []byte) []byte {
	return kr.AppendSign(nil, msg)
}

// AppendSign appends HMAC-SHA256(first key, msg) to dst.
func (kr *Keyring) AppendSign(dst, msg []byte) []byte {
	keys := *kr.keys.Load()
	m := hmac.New(sha256.New, keys[0])
	m.Write(msg)
	return m.Sum(dst)
}

// Verify reports whether mac is HMAC-SHA256(key, msg) for any key of the
// keyring, comparing in constant time.
func (kr *Keyring) Verify(msg, mac []byte) bool {
	if len(mac) != MACSize {
		return false
	}
	var sum [MACSize]byte
	for _, k := range *kr.keys.Load() {
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		if hmac.Equal(m.Sum(sum[:0]), mac) {
			return true
		}
	}
	return false
}

// Len returns the number of keys.
func (kr *Keyring) Len() int { return len(*kr.keys.Load()) }

// Replace makes kr use the keys of other from now on; calls already running
// finish with the keys they started with. Everyone holding kr sees the change
// (reloading the keys file on SIGHUP).
func (kr *Keyring) Replace(other *Keyring) {
	kr.keys.Store(other.keys.Load())
}

// MAC is a reusable HMAC state over a keyring's keys, for one goroutine at a
// time: it signs and verifies like the keyring without setting up a new
// HMAC per message. It follows Replace: the next message after a change uses
// the new keys.
type MAC struct {
	kr   *Keyring
	keys *[][]byte   // the keys the hashes below were made for
	macs []hash.Hash // one per key, made on first use
	sum  [MACSize]byte
}

// NewMAC returns a reusable HMAC state over kr's keys.
func (kr *Keyring) NewMAC() *MAC { return &MAC{kr: kr} }

// hashFor returns the reset HMAC of key i of the keyring's current keys.
func (m *MAC) hashFor(keys *[][]byte, i int) hash.Hash {
	if m.keys != keys {
		m.keys, m.macs = keys, make([]hash.Hash, len(*keys))
	}
	h := m.macs[i]
	if h == nil {
		h = hmac.New(sha256.New, (*keys)[i])
		m.macs[i] = h
	} else {
		h.Reset()
	}
	return h
}

// AppendSign appends HMAC-SHA256(first key, msg) to dst.
func (m *MAC) AppendSign(dst, msg []byte) []byte {
	h := m.hashFor(m.kr.keys.Load(), 0)
	h.Write(msg)
	return h.Sum(dst)
}

// Verify reports whether mac is HMAC-SHA256(key, msg) for any key of the
// keyring, comparing in constant time.
func (m *MAC) Verify(msg, mac []byte) bool {
	if len(mac) != MACSize {
		return false
	}
	keys := m.kr.keys.Load()
	for i := range *keys {
		h := m.hashFor(keys, i)
		h.Write(msg)
		if hmac.Equal(h.Sum(m.sum[:0]), mac) {
			return true
		}
	}
	return false
}
