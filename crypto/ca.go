package crypto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/durachord/durachord/chord"
)

// Validity periods and clock-skew allowance of issued certificates.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 2 * 365 * 24 * time.Hour
	// backdate is subtracted from NotBefore so that peers whose clocks lag a
	// little accept a fresh certificate.
	backdate = time.Hour
)

// CA is a cluster certificate authority: its certificate and private key.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert encoded as a PEM "CERTIFICATE" block.
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA creates a new cluster CA in memory (ECDSA P-256, valid 10 years).
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "durachord cluster CA", Organization: []string{"durachord"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pemCert(der), key: key}, nil
}

// InitCA creates a new cluster CA and writes ca.crt (0644) and ca.key (0600)
// into dir, creating dir (0700) if needed. It refuses, with an error wrapping
// ErrExists, to overwrite an existing ca.crt or ca.key.
func InitCA(dir string) error {
	ca, err := NewCA()
	if err != nil {
		return err
	}
	return ca.WriteDir(dir, false)
}

// WriteDir writes ca.crt (0644) and ca.key (0600) into dir. Unless overwrite
// is set, it fails with ErrExists if either file exists.
func (ca *CA) WriteDir(dir string, overwrite bool) error {
	keyPEM, err := pemKey(ca.key)
	if err != nil {
		return err
	}
	return writeFiles(dir, []outFile{
		{CACertFile, ca.CertPEM, 0o644},
		{CAKeyFile, keyPEM, 0o600},
	}, overwrite)
}

// LoadCA reads the CA written by InitCA from dir and checks that the key
// belongs to the certificate and that the certificate is a valid CA now.
func LoadCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certPEM, err := readFile(certPath)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s: %w: not a CA certificate", certPath, ErrInvalidCertificate)
	}
	if err := checkValidNow(cert); err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	ecKey, err := loadECKey(keyPath)
	if err != nil {
		return nil, err
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&ecKey.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s: %w", keyPath, certPath, ErrKeyMismatch)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: ecKey}, nil
}

// NodeCert is a node certificate issued by a CA, with its private key.
type NodeCert struct {
	// ID is the node ID the certificate proves (NodeID of Cert).
	ID chord.ID
	// Address is the HOST:PORT the certificate was issued for.
	Address string
	// Cert is the node certificate.
	Cert *x509.Certificate
	// CACertPEM, CertPEM and KeyPEM are the contents of ca.crt, node.crt and
	// node.key.
	CACertPEM, CertPEM, KeyPEM []byte
}

// Issue creates a node key and certificate for a node reachable at address
// (HOST:PORT). The host becomes the certificate's subject alternative name:
// an IP SAN for an IP address, a DNS SAN for a name. The certificate is valid
// for 2 years as TLS server and client.
func (ca *CA) Issue(address string) (*NodeCert, error) {
	if _, _, err := parseAddress(address); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	return ca.issue(address, key)
}

// Renew issues a new certificate for the node key in tlsDir (node.key), for
// address, or for the address in the node's current certificate when address
// is "". The public key, and so the node ID, stay the same: the node keeps its
// place on the ring.
func (ca *CA) Renew(tlsDir, address string) (*NodeCert, error) {
	key, err := loadECKey(filepath.Join(tlsDir, NodeKeyFile))
	if err != nil {
		return nil, err
	}
	if address == "" {
		certPath := filepath.Join(tlsDir, NodeCertFile)
		b, err := readFile(certPath)
		if err != nil {
			return nil, err
		}
		certs, err := parseCertsPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certPath, err)
		}
		address = certs[0].Subject.CommonName
	}
	if _, _, err := parseAddress(address); err != nil {
		return nil, err
	}
	return ca.issue(address, key)
}

// loadECKey reads an ECDSA private key from a secret file (not readable by
// others).
func loadECKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	parsed, err := parseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %w: want an ECDSA key, have %T", path, ErrInvalidPEM, parsed)
	}
	return key, nil
}

// issue signs a node certificate for key and address.
func (ca *CA) issue(address string, key *ecdsa.PrivateKey) (*NodeCert, error) {
	ip, dnsName, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: address, Organization: []string{"durachord"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(NodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{dnsName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create node certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse node certificate: %w", err)
	}
	keyPEM, err := pemKey(key)
	if err != nil {
		return nil, err
	}
	return &NodeCert{
		ID:        NodeID(cert),
		Address:   address,
		Cert:      cert,
		CACertPEM: ca.CertPEM,
		CertPEM:   pemCert(der),
		KeyPEM:    keyPEM,
	}, nil
}

// WriteDir writes ca.crt (0644), node.crt (0644) and node.key (0600) into dir,
// creating dir (0700) if needed. Unless overwrite is set, it fails with an
// error wrapping ErrExists if any of them exists.
func (nc *NodeCert) WriteDir(dir string, overwrite bool) error {
	return writeFiles(dir, []outFile{
		{CACertFile, nc.CACertPEM, 0o644},
		{NodeCertFile, nc.CertPEM, 0o644},
		{NodeKeyFile, nc.KeyPEM, 0o600},
	}, overwrite)
}

// Identity returns the node identity the certificate gives, as LoadIdentity
// would after WriteDir.
func (nc *NodeCert) Identity() (*Identity, error) {
	return NewIdentity(nc.CACertPEM, nc.CertPEM, nc.KeyPEM)
}

// parseAddress splits HOST:PORT and returns the host as an IP or a DNS name.
func parseAddress(address string) (net.IP, string, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, "", fmt.Errorf("%w %q: %v", ErrInvalidAddress, address, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, "", fmt.Errorf("%w %q: port %q is not a number in 0..65535", ErrInvalidAddress, address, port)
	}
	if host == "" {
		return nil, "", fmt.Errorf("%w %q: empty host", ErrInvalidAddress, address)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return nil, "", fmt.Errorf("%w %q: %s is not an address peers can dial", ErrInvalidAddress, address, host)
		}
		return ip, "", nil
	}
	if !validDNSName(host) {
		return nil, "", fmt.Errorf("%w %q: %q is neither an IP address nor a DNS name", ErrInvalidAddress, address, host)
	}
	return nil, strings.ToLower(strings.TrimSuffix(host, ".")), nil
}

// validDNSName reports whether s is a DNS host name: labels of letters,
// digits and inner hyphens (underscores tolerated), 1..63 bytes each, at most
// 253 bytes in all.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCertsPEM parses every CERTIFICATE block; at least one is required and
// no other block type is allowed.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: unexpected %q block, want CERTIFICATE", ErrInvalidPEM, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidCertificate, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrInvalidPEM)
	}
	return certs, nil
}

// parseKeyPEM parses a PKCS #8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY" block.
func parseKeyPEM(b []byte) (any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrInvalidPEM)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPEM, err)
		}
		return key, nil
	case "EC PRIVATE KEY":
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPEM, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: unexpected %q block, want PRIVATE KEY", ErrInvalidPEM, block.Type)
}

func checkValidNow(cert *x509.Certificate) error {
	now := time.Now()
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w: not valid before %s", ErrInvalidCertificate, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("%w: expired at %s", ErrInvalidCertificate, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
