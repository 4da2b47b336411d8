package crypto

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/durachord/durachord/chord"
)

// NodeID returns the ring identifier a certificate proves: the SHA-256 of its
// DER SubjectPublicKeyInfo. It is the node's position 0.
func NodeID(cert *x509.Certificate) chord.ID {
	return chord.ID(sha256.Sum256(cert.RawSubjectPublicKeyInfo))
}

// PositionCandidates is the number of ring positions a certificate proves
// (docs/vnodes.md): a node may stand at any of them, and a peer refuses a
// position outside them.
const PositionCandidates = 256

// PositionID returns candidate position i of a certificate: NodeID for 0,
// else the SHA-256 of the DER SubjectPublicKeyInfo followed by i as 4 bytes
// big-endian. It panics for i outside [0, PositionCandidates).
func PositionID(cert *x509.Certificate, i int) chord.ID {
	if i < 0 || i >= PositionCandidates {
		panic(fmt.Sprintf("crypto: position %d outside [0, %d)", i, PositionCandidates))
	}
	if i == 0 {
		return NodeID(cert)
	}
	h := sha256.New()
	h.Write(cert.RawSubjectPublicKeyInfo)
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(i)))
	return chord.ID(h.Sum(nil))
}

// PositionIndex returns the index of the candidate position id of cert, or
// false if the certificate does not produce id.
func PositionIndex(cert *x509.Certificate, id chord.ID) (int, bool) {
	for i := range PositionCandidates {
		if PositionID(cert, i) == id {
			return i, true
		}
	}
	return 0, false
}

// Identity is a node's TLS identity: its certificate and key, the cluster CA
// it trusts and the ID its certificate proves.
//
// Reload replaces the certificate and the CA of a running node (a renewed
// certificate of the same key, a CA bundle during rotation) without changing
// its ID: handshakes started afterwards use the new files, connections
// already open keep theirs. The exported fields describe the files as first
// loaded; Current returns the ones in use.
type Identity struct {
	// ID is NodeID(Leaf).
	ID chord.ID
	// Certificate is the node certificate with its private key, for TLS.
	Certificate tls.Certificate
	// Roots holds the cluster CA certificate(s).
	Roots *x509.CertPool
	// Leaf is the parsed node certificate.
	Leaf *x509.Certificate

	// cur is the identity handshakes use: this one, or the last one given
	// to Reload. Its server config is built once, so that session tickets
	// stay valid until the next reload.
	cur atomic.Pointer[material]
}

// material is what one handshake needs.
type material struct {
	id     *Identity
	server *tls.Config
}

func (id *Identity) material() *material {
	if m := id.cur.Load(); m != nil {
		return m
	}
	m := &material{id: id, server: &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Roots,
	}}
	if id.cur.CompareAndSwap(nil, m) {
		return m
	}
	return id.cur.Load()
}

// Current returns the identity new handshakes use (id itself until a
// Reload).
func (id *Identity) Current() *Identity { return id.material().id }

// Reload makes next the identity of new handshakes. It refuses, with an
// error wrapping ErrKeyMismatch, a certificate that proves another node ID:
// the ID is the node's place on the ring and comes with its data, so a new
// key needs a new node.
func (id *Identity) Reload(next *Identity) error {
	if next.ID != id.ID {
		return fmt.Errorf("%w: the new certificate proves node ID %s, this node is %s (renew with the same key: dhtctl cert renew)", ErrKeyMismatch, next.ID, id.ID)
	}
	m := next.Current().material()
	id.cur.Store(m)
	return nil
}

// LoadIdentity reads ca.crt, node.crt and node.key from tlsDir (as
// NodeCert.WriteDir writes them) and checks that node.key is not readable by
// group or others, that it belongs to node.crt, and that node.crt is valid
// now, chains to ca.crt and may serve as TLS server and client. Errors name the
// file and the problem.
func LoadIdentity(tlsDir string) (*Identity, error) {
	caPath := filepath.Join(tlsDir, CACertFile)
	certPath := filepath.Join(tlsDir, NodeCertFile)
	keyPath := filepath.Join(tlsDir, NodeKeyFile)
	caPEM, err := readFile(caPath)
	if err != nil {
		return nil, err
	}
	certPEM, err := readFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readSecretFile(keyPath)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity(caPEM, certPEM, keyPEM, caPath, certPath, keyPath)
	if err != nil {
		return nil, err
	}
	return id, nil
}

// NewIdentity is LoadIdentity for PEM data in memory.
func NewIdentity(caCertPEM, certPEM, keyPEM []byte) (*Identity, error) {
	return newIdentity(caCertPEM, certPEM, keyPEM, CACertFile, NodeCertFile, NodeKeyFile)
}

func newIdentity(caPEM, certPEM, keyPEM []byte, caName, certName, keyName string) (*Identity, error) {
	cas, err := parseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caName, err)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		if !ca.IsCA {
			return nil, fmt.Errorf("%s: %w: not a CA certificate", caName, ErrInvalidCertificate)
		}
		roots.AddCert(ca)
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certName, err)
	}
	leaf := certs[0]
	if _, err := parseKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", keyName, err)
	}
	tlsCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s does not belong to %s: %w (%v)", keyName, certName, ErrKeyMismatch, err)
	}
	tlsCert.Leaf = leaf
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: intermediates,
			KeyUsages:     []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w: not usable with the CA in %s: %v", certName, ErrInvalidCertificate, caName, err)
		}
	}
	return &Identity{ID: NodeID(leaf), Certificate: tlsCert, Roots: roots, Leaf: leaf}, nil
}

// ServerConfig returns the TLS configuration of a node's RPC listener: TLS 1.3
// only, the node certificate, and a client certificate required and verified
// against the cluster CA. The caller's ID is then PeerID(conn.ConnectionState()).
// The certificate and CA are those current at each handshake (see Reload).
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return id.material().server, nil
		},
	}
}

// ClientConfig returns the TLS configuration for dialling a peer: TLS 1.3
// only, the node certificate as client certificate, the server certificate
// verified against the cluster CA for serverName (the host of the address
// dialled). If expect is not zero, the handshake also fails, with an error
// wrapping chord.ErrIdentityMismatch, unless expect is one of the positions
// the server's certificate produces (PositionID).
// The certificate and CA are those current when it is called (see Reload).
func (id *Identity) ClientConfig(serverName string, expect chord.ID) *tls.Config {
	cur := id.Current()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cur.Certificate},
		RootCAs:      cur.Roots,
		ServerName:   serverName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if expect.IsZero() {
				return nil
			}
			got, err := PeerID(cs)
			if err != nil {
				return err
			}
			if got == expect {
				return nil
			}
			if _, ok := PositionIndex(cs.PeerCertificates[0], expect); ok {
				return nil
			}
			return fmt.Errorf("%w: %s presents node ID %s, which does not produce position %s", chord.ErrIdentityMismatch, serverName, got, expect)
		},
	}
}

// PeerID returns the ID proved by the peer's certificate on a verified TLS
// connection, or ErrNoPeerCertificate.
func PeerID(cs tls.ConnectionState) (chord.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return chord.ID{}, ErrNoPeerCertificate
	}
	return NodeID(cs.PeerCertificates[0]), nil
}
