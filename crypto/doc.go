// Package crypto holds a cluster's secrets: the cluster certificate authority,
// node certificates and the node identity derived from them, the TLS
// configurations every connection between nodes uses, and the HMAC keyring
// that signs each RPC frame.
//
// # Certificates
//
// The cluster CA is a self-signed ECDSA P-256 certificate valid for 10 years
// (files ca.crt and ca.key). A node certificate is an ECDSA P-256 certificate
// signed by the CA, valid for 2 years, usable as TLS server and client
// (extended key usages serverAuth and clientAuth), with the host of the node's
// address as its only subject alternative name (an IP SAN for an IP address,
// a DNS SAN for a name). A node's TLS directory holds ca.crt, node.crt and
// node.key. All files are PEM: "CERTIFICATE" blocks and PKCS #8
// "PRIVATE KEY" blocks. Private key files have mode 0600; LoadIdentity and
// LoadCA refuse key files that group or others may read (as ssh does), and
// LoadKeyring does the same for the HMAC keys file.
//
// # Identity
//
// A node's ID is the SHA-256 of its certificate's DER SubjectPublicKeyInfo
// (NodeID). Every connection is TLS 1.3 with mutual authentication against
// the cluster CA; a client that expects a given ID checks that the server's
// certificate hashes to it and fails with an error wrapping
// chord.ErrIdentityMismatch otherwise. A server learns the caller's ID with
// PeerID.
//
// # HMAC keyring
//
// The keys file holds one standard base64 key per line (padding optional);
// blank lines and lines starting with '#' are ignored. Each key is at least
// 32 bytes once decoded. The first key signs (HMAC-SHA256), every key
// verifies, so a key is rotated in three steps: add the new key as second line
// everywhere, move it first everywhere, then remove the old one. A Keyring is
// safe for concurrent use and its keys can be replaced while it is in use
// (Replace), for reloading on SIGHUP.
package crypto
