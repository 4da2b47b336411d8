package crypto

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"github.com/durachord/durachord/chord"
)

// NodeID returns the ring identifier a certificate proves: the SHA-256 of its
// DER SubjectPublicKeyInfo.
func NodeID(cert *x509.Certificate) chord.ID {
	return chord.ID(sha256.Sum256(cert.RawSubjectPublicKeyInfo))
}

// Identity is a node's TLS identity: its certificate and key, the cluster CA
// it trusts and the ID its certificate proves.
type Identity struct {
	// ID is NodeID(Leaf).
	ID chord.ID
	// Certificate is the node certificate with its private key, for TLS.
	Certificate tls.Certificate
	// Roots holds the cluster CA certificate(s).
	Roots *x509.CertPool
	// Leaf is the parsed node certificate.
	Leaf *x509.Certificate
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
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Roots,
	}
}

// ClientConfig returns the TLS configuration for dialling a peer: TLS 1.3
// only, the node certificate as client certificate, the server certificate
// verified against the cluster CA for serverName (the host of the address
// dialled). If expect is not zero, the handshake also fails, with an error
// wrapping chord.ErrIdentityMismatch, unless the server's certificate hashes
// to expect.
func (id *Identity) ClientConfig(serverName string, expect chord.ID) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		RootCAs:      id.Roots,
		ServerName:   serverName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if expect.IsZero() {
				return nil
			}
			got, err := PeerID(cs)
			if err != nil {
				return err
			}
			if got != expect {
				return fmt.Errorf("%w: %s presents node ID %s, want %s", chord.ErrIdentityMismatch, serverName, got, expect)
			}
			return nil
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
