package crypto

import "errors"

// Sentinel errors. Callers compare with errors.Is; the returned errors wrap
// them with the file or value concerned.
var (
	// ErrExists: an output file is already present and overwriting was not
	// asked for.
	ErrExists = errors.New("crypto: file already exists")
	// ErrInvalidAddress: an address is not HOST:PORT with a usable host.
	ErrInvalidAddress = errors.New("crypto: invalid address")
	// ErrInvalidPEM: a file does not hold the PEM block expected.
	ErrInvalidPEM = errors.New("crypto: invalid PEM data")
	// ErrInvalidCertificate: a certificate cannot be parsed, is not valid now,
	// does not chain to the cluster CA or cannot serve as server and client.
	ErrInvalidCertificate = errors.New("crypto: invalid certificate")
	// ErrKeyMismatch: a private key does not belong to its certificate.
	ErrKeyMismatch = errors.New("crypto: private key does not match certificate")
	// ErrInsecureFile: a secret file (private key, HMAC keys) may be read by
	// group or others; it must have mode 0600 (or stricter).
	ErrInsecureFile = errors.New("crypto: secret file readable by group or others")
	// ErrNoKeys: a keyring holds no key.
	ErrNoKeys = errors.New("crypto: keyring has no keys")
	// ErrInvalidKey: an HMAC key is not base64 or shorter than MinHMACKeyBytes.
	ErrInvalidKey = errors.New("crypto: invalid HMAC key")
	// ErrInvalidToken: an admin token is shorter than MinTokenLen or holds
	// white space or non-ASCII characters.
	ErrInvalidToken = errors.New("crypto: invalid admin token")
	// ErrNoPeerCertificate: a TLS connection carries no peer certificate.
	ErrNoPeerCertificate = errors.New("crypto: no peer certificate")
)
