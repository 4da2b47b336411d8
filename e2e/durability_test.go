package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/internal/testenv"
)

// TestPutSyncedBeforeAnswer watches a running node's system calls with
// strace: between reading a PUT from a client and writing the SUCCESS that
// answers the GET sent after it on the same connection, the node must have
// completed an fdatasync of its database. The crash tests kill processes,
// which the page cache survives, so only this shows that an acknowledged PUT
// is on the disk and not only in memory.
func TestPutSyncedBeforeAnswer(t *testing.T) {
	requireE2E(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		testenv.Skip(t, "durability test: strace is missing")
	}
	c := NewCluster(t, ClusterOptions{})
	n := c.StartNodes(1)[0]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c.WaitStable(ctx)
	cmd, _ := n.proc()

	traceFile := filepath.Join(t.TempDir(), "strace.out")
	tr := exec.Command(strace, "-f", "-p", strconv.Itoa(cmd.Process.Pid), "-o", traceFile,
		"-y", "-xx", "-s", "64", "-e", "trace=read,write,writev,fdatasync,fsync,sync_file_range")
	stderr, err := tr.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatalf("start strace: %v", err)
	}
	traceDone := make(chan error, 1)
	go func() {
		traceDone <- tr.Wait()
	}()
	// The trace ends when the node does: killing a traced process needs no
	// detach, which can hang while its threads are stopped.
	stopTrace := sync.OnceFunc(func() {
		n.kill()
		select {
		case <-traceDone:
		case <-time.After(30 * time.Second):
			t.Error("strace did not end within 30 s of the node")
			_ = tr.Process.Kill()
			<-traceDone
		}
	})
	defer stopTrace()
	// strace says "Process N attached" once it traces every thread.
	attached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "attached") {
				close(attached)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-attached:
	case err := <-traceDone:
		testenv.Skip(t, fmt.Sprintf("durability test: strace cannot trace here: %v", err))
	case <-ctx.Done():
		t.Fatal("strace did not attach within a minute")
	}

	key := testKey("fsync", 1)
	value := []byte("synced before it is seen")
	cl := n.Dial(ctx)
	if err := cl.Put(ctx, api.Put{Key: key, Value: value, TTL: 600}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := cl.Get(ctx, key)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get(%x) = %q, %v; want %q", key[:4], got, err, value)
	}
	stopTrace()

	b, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSyncedBeforeAnswer(string(b), key); err != nil {
		t.Fatalf("%v\n---- trace ----\n%s", err, b)
	}
}

// checkSyncedBeforeAnswer checks an strace log (-f -y -xx) of a node: the
// first line showing the PUT of key (its type, 650, and key) is followed by a
// completed fdatasync or fsync of records.db, and that by the write of the
// SUCCESS reply (type 652 and key).
func checkSyncedBeforeAnswer(trace string, key [32]byte) error {
	hexKey := straceHex(key[:])
	db := straceHex([]byte("records.db")) + ">" // -y -xx prints a path in hex too
	putMark := `\x02\x8a`                       // 650 DHT PUT, then TTL, replication, reserved
	replyMark := `\x02\x8c` + hexKey            // 652 DHT SUCCESS, then the key
	lines := strings.Split(trace, "\n")
	put, synced, reply := -1, -1, -1
	syncing := map[string]bool{} // thread IDs with an unfinished sync of the database
	for i, line := range lines {
		tid, call, _ := strings.Cut(line, " ")
		call = strings.TrimSpace(call)
		switch {
		case put < 0:
			if strings.Contains(line, hexKey) && strings.Contains(line, putMark) {
				put = i
			}
		case synced < 0:
			isSync := strings.HasPrefix(call, "fdatasync(") || strings.HasPrefix(call, "fsync(")
			switch {
			case isSync && strings.Contains(call, db) && strings.HasSuffix(call, "= 0"):
				synced = i
			case isSync && strings.Contains(call, db) && strings.HasSuffix(call, "<unfinished ...>"):
				syncing[tid] = true
			case syncing[tid] && (strings.HasPrefix(call, "<... fdatasync resumed>") || strings.HasPrefix(call, "<... fsync resumed>")) &&
				strings.HasSuffix(call, "= 0"):
				synced = i
			}
			if strings.Contains(line, replyMark) && (strings.HasPrefix(call, "write(") || strings.HasPrefix(call, "writev(")) {
				return fmt.Errorf("the SUCCESS reply (trace line %d) was written before any fdatasync of records.db completed after the PUT was read (line %d)", i+1, put+1)
			}
		case reply < 0:
			if strings.Contains(line, replyMark) && (strings.HasPrefix(call, "write(") || strings.HasPrefix(call, "writev(")) {
				reply = i
			}
		}
	}
	switch {
	case put < 0:
		return fmt.Errorf("the trace shows no read of the PUT")
	case synced < 0:
		return fmt.Errorf("no fdatasync or fsync of records.db completed after the PUT was read (line %d)", put+1)
	case reply < 0:
		return fmt.Errorf("the trace shows no write of the SUCCESS reply after the sync (line %d)", synced+1)
	}
	return nil
}

// straceHex is b as strace -xx prints it.
func straceHex(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, `\x%02x`, c)
	}
	return sb.String()
}
