package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/durachord/durachord/crypto"
)

// TestCertRenewOnReload: `dhtctl cert renew` and SIGHUP give a running node
// its renewed certificate without a restart (same process, same ID, the ring
// keeps working); a certificate of another key is refused on reload and the
// node keeps presenting the renewed one.
func TestCertRenewOnReload(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	nodes := c.StartNodes(3)
	stable(t, ctx, c)
	n := nodes[1]
	cmd, _ := n.proc()
	pid := cmd.Process.Pid

	first := readNodeCert(t, n.TLSDir)
	if got := presentedCert(t, ctx, c, n); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("%s presents serial %x; want its certificate's %x", n.Name, got.SerialNumber, first.SerialNumber)
	}

	out, errOut, code := dhtctl(t, ctx, "cert", "renew", "--ca", filepath.Join(c.dir, "ca"), "--dir", n.TLSDir)
	if code != 0 {
		t.Fatalf("dhtctl cert renew exited %d: %s%s", code, out, errOut)
	}
	renewed := readNodeCert(t, n.TLSDir)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("dhtctl cert renew left the same certificate")
	}
	sighupAndWait(t, ctx, n, "configuration reloaded")

	if got := presentedCert(t, ctx, c, n); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after renew and SIGHUP %s presents serial %x; want the renewed %x", n.Name, got.SerialNumber, renewed.SerialNumber)
	}
	checkCertExpiryMetric(t, ctx, n, renewed)
	if cmd, _ := n.proc(); cmd.Process.Pid != pid || !n.Running() {
		t.Fatalf("%s was restarted (pid %d, was %d) or stopped", n.Name, cmd.Process.Pid, pid)
	}
	if st, err := n.Status(ctx); err != nil || st.ID != n.ID {
		t.Errorf("%s after the reload: /status id = %q, %v; want %s", n.Name, st.ID, err, n.ID)
	}
	// The ring keeps working through the renewed node.
	ds := dataSet{Name: "renewed", N: 200}
	if lost := putAll(t, ctx, []*Node{n}, ds, 4, 8, 3600, 2); lost > 0 {
		t.Errorf("%d of %d PUTs through %s lost after the reload", lost, ds.N, n.Name)
	}
	checkAllReadable(t, ctx, []*Node{nodes[0], nodes[2]}, ds, 30*time.Second)

	// A certificate of another key (another node ID) is refused; the node
	// keeps the renewed one.
	keep := t.TempDir()
	for _, name := range []string{crypto.CACertFile, crypto.NodeCertFile, crypto.NodeKeyFile} {
		copyFile(t, filepath.Join(n.TLSDir, name), filepath.Join(keep, name))
	}
	other, err := c.CA.Issue(n.P2P)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteDir(n.TLSDir, true); err != nil {
		t.Fatal(err)
	}
	sighupAndWait(t, ctx, n, "reload refused")
	if !n.LogContains("reload refused: tls_dir", "node ID") {
		t.Errorf("%s: no log line saying the new certificate proves another node ID", n.Name)
	}
	if got := presentedCert(t, ctx, c, n); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after a refused reload %s presents serial %x; want the renewed %x", n.Name, got.SerialNumber, renewed.SerialNumber)
	}
	for _, name := range []string{crypto.CACertFile, crypto.NodeCertFile, crypto.NodeKeyFile} {
		copyFile(t, filepath.Join(keep, name), filepath.Join(n.TLSDir, name))
	}
	if st, err := n.Status(ctx); err != nil || !st.Ready {
		t.Errorf("%s after a refused reload: ready = %v, %v; want true", n.Name, st.Ready, err)
	}
}

// readNodeCert parses node.crt in dir.
func readNodeCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, crypto.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", filepath.Join(dir, crypto.NodeCertFile))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// presentedCert completes a TLS handshake with n's peer port as a member of
// the cluster would and returns the certificate n presents.
func presentedCert(t *testing.T, ctx context.Context, c *Cluster, n *Node) *x509.Certificate {
	t.Helper()
	nc, err := c.CA.Issue(net.JoinHostPort(n.IP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := nc.Identity()
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: id.ClientConfig(n.IP, n.ID)}
	conn, err := d.DialContext(dctx, "tcp", n.P2P)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", n.Name, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// checkCertExpiryMetric checks durachord_tls_cert_not_after_seconds against
// cert.
func checkCertExpiryMetric(t *testing.T, ctx context.Context, n *Node, cert *x509.Certificate) {
	t.Helper()
	got, err := n.Metric(ctx, "durachord_tls_cert_not_after_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(cert.NotAfter.Unix()); got != want {
		t.Errorf("%s: durachord_tls_cert_not_after_seconds = %s; want %s", n.Name,
			strconv.FormatFloat(got, 'f', 0, 64), strconv.FormatFloat(want, 'f', 0, 64))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", from, err))
	}
}
