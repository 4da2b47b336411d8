package main

import (
	"context"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// TestReloadWhileJoining: SIGHUP reloads while the join goroutine retries
// an unreachable bootstrap peer. The two share no configuration (run it
// with -race, as make race does: a reload that wrote what the join reads
// is reported there as a data race).
func TestReloadWhileJoining(t *testing.T) {
	// Our own subscription keeps a SIGHUP from ending the test process if
	// one arrives while serve is not subscribed.
	own := make(chan os.Signal, 16)
	signal.Notify(own, syscall.SIGHUP)
	defer signal.Stop(own)

	// A port nobody listens on: every join attempt fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ca := cryptotest.NewCA(t)
	cfg := config.Default()
	cfg.P2PAddress = "127.0.0.1:0"
	cfg.APIAddress = "127.0.0.1:0"
	cfg.AdminAddress = ""
	cfg.Bootstrap = []string{dead}
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.TLSDir, _ = cryptotest.WriteTLSDir(t, ca, "127.0.0.1:0")
	cfg.HMACKeys = cryptotest.WriteKeysFile(t, 1)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	next := cfg.Clone()
	next.Bootstrap = []string{dead, dead} // not reloadable: logged as needing a restart
	next.LogLevel = "debug"
	reloads := make(chan struct{}, 16)
	reload := func() (config.Config, error) {
		reloads <- struct{}{}
		return next.Clone(), nil
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, reload, out) }()

	waitUntil(t, "a failed join attempt", func() bool { return strings.Contains(out.String(), "join failed; retrying") })
	for range 5 {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reloads:
		case <-time.After(10 * time.Second):
			t.Fatal("SIGHUP did not reload within 10 s")
		}
	}
	waitUntil(t, "another join attempt after the reloads", func() bool {
		return strings.Count(out.String(), "join failed; retrying") >= 3
	})
	cancel()
	select {
	case err := <-served:
		if err != nil && err != context.Canceled {
			t.Errorf("serve = %v; want nil or %v", err, context.Canceled)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return within 20 s of its ctx ending")
	}
	if !strings.Contains(out.String(), "configuration reloaded") {
		t.Errorf("log has no reload:\n%s", out.String())
	}
}

// waitUntil polls cond until it holds or 20 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// TestSecondSignalWatcherEnds: the watcher started for a graceful leave
// ignores SIGHUP and ends when stopped, so that serve leaves no goroutine
// behind.
func TestSecondSignalWatcherEnds(t *testing.T) {
	d := &daemon{log: newLogger(config.Default(), &syncBuffer{})}
	sigs := make(chan os.Signal, 1)
	stop := d.watchSecondSignal(sigs)
	sigs <- syscall.SIGHUP // ignored: a reload during the leave
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the second-signal watcher did not end within 10 s of being stopped")
	}
}
