package e2e

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdNotify: with NOTIFY_SOCKET set, dhtd sends READY=1 once it has
// joined and STOPPING=1 when SIGTERM makes it leave.
func TestSystemdNotify(t *testing.T) {
	c := NewCluster(t, ClusterOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	first := c.StartNodes(1)[0]

	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	msgs := make(chan string, 16)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()

	n := c.NewNode(NodeOptions{Env: []string{"NOTIFY_SOCKET=" + sock}})
	n.Start(first.P2P)
	expect := func(want string) {
		t.Helper()
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				for line := range strings.Lines(m) {
					if strings.TrimSpace(line) == want {
						return
					}
				}
			case <-ctx.Done():
				t.Fatalf("no %q on NOTIFY_SOCKET", want)
			}
		}
	}
	expect("READY=1")
	st, err := n.Status(ctx)
	if err != nil || !st.Ready {
		t.Errorf("after READY=1, /status ready = %v, %v; want true", st.Ready, err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Stop() }()
	expect("STOPPING=1")
	if err := <-done; err != nil {
		t.Errorf("dhtd after SIGTERM exited with %v; want status 0", err)
	}
}
