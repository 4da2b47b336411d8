package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durachord/durachord/crypto"
)

// The devnet tests run this test binary as a stand-in dhtd when
// fakeDHTDEnv is set: it binds its --admin-address, says it runs as dhtd
// does, and waits for SIGTERM,
// or fails as dhtd does when the address is taken; with the value "fail"
// it exits at once with another error.
const fakeDHTDEnv = "DURACHORD_TEST_FAKE_DHTD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeDHTDEnv); mode != "" {
		os.Exit(fakeDHTD(mode))
	}
	os.Exit(m.Run())
}

func fakeDHTD(mode string) int {
	fs := flag.NewFlagSet("dhtd", flag.ContinueOnError)
	admin := fs.String("admin-address", "", "")
	for _, name := range []string{"config", "p2p-address", "api-address", "data-dir", "tls-dir", "hmac-keys", "bootstrap"} {
		fs.String(name, "", "")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Println("dhtd:", err)
		return 2
	}
	if mode == "fail" {
		fmt.Println("dhtd: config: some other error")
		return 1
	}
	l, err := net.Listen("tcp", *admin)
	if err != nil {
		fmt.Printf("dhtd: admin_address: %v\n", err)
		return 1
	}
	defer l.Close()
	fmt.Println("dhtd: node running")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	<-sigs
	return 0
}

func newTestNode(t *testing.T) *devnetNode {
	t.Helper()
	dir := t.TempDir()
	if err := crypto.InitCA(filepath.Join(dir, "ca")); err != nil {
		t.Fatal(err)
	}
	ca, err := crypto.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	nd := &devnetNode{dir: filepath.Join(dir, "node1"), ca: ca}
	nd.DataDir = filepath.Join(nd.dir, "data")
	nd.log = filepath.Join(nd.dir, "dhtd.log")
	if err := nd.assign(); err != nil {
		t.Fatal(err)
	}
	return nd
}

// TestDevnetNodeRestartsOnTakenAddress: a node whose admin address another
// process took between devnet picking it and the node binding it gets new
// addresses and a new certificate, and starts.
func TestDevnetNodeRestartsOnTakenAddress(t *testing.T) {
	t.Setenv(fakeDHTDEnv, "listen")
	nd := newTestNode(t)
	// An outgoing connection's port, as another node's connection takes
	// one: nothing listens there, and binding it fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	nd.Admin = conn.LocalAddr().String()
	oldAdmin, oldID := nd.Admin, nd.ID
	defer devnetStop([]*devnetNode{nd}, os.Stderr)
	if err := nd.startListening(context.Background(), os.Args[0], t.TempDir(), ""); err != nil {
		t.Fatalf("startListening with its admin address taken = %v; want it started on another", err)
	}
	if nd.Admin == oldAdmin || nd.ID == oldID {
		t.Fatalf("node restarted at admin %s, ID %s; want a new address and a new ID (was %s, %s)", nd.Admin, nd.ID, oldAdmin, oldID)
	}
	cert, err := crypto.LoadIdentity(filepath.Join(nd.dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	if got := crypto.NodeID(cert.Leaf).String(); got != nd.ID {
		t.Fatalf("certificate on disk proves %s; devnet lists %s", got, nd.ID)
	}
}

// TestDevnetNodeOtherFailureNotRetried: a node that fails for any other
// reason is reported at once, with its log, and not started again.
func TestDevnetNodeOtherFailureNotRetried(t *testing.T) {
	t.Setenv(fakeDHTDEnv, "fail")
	nd := newTestNode(t)
	oldAdmin := nd.Admin
	defer devnetStop([]*devnetNode{nd}, os.Stderr)
	err := nd.startListening(context.Background(), os.Args[0], t.TempDir(), "")
	if err == nil || !strings.Contains(err.Error(), nd.log) {
		t.Fatalf("startListening of a node that fails = %v; want an error naming its log", err)
	}
	if nd.Admin != oldAdmin {
		t.Fatalf("a node that failed for another reason got new addresses")
	}
	b, _ := os.ReadFile(nd.log)
	if n := strings.Count(string(b), "some other error"); n != 1 {
		t.Fatalf("the node was started %d times; want once", n)
	}
}
