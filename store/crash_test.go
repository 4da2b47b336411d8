package store

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "DURACHORD_STORE_CRASH_CHILD"

// crashValue is the value the crash child stores under key.
func crashValue(key [32]byte) []byte {
	return []byte(strings.Repeat(hex.EncodeToString(key[:8]), 1+int(key[9])%20))
}

// crashChild is the child process of TestCrash: it puts records into the
// store in dir from several goroutines until killed, printing each key after
// its Put returned.
func crashChild(dir string) {
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex // serialises writes to stdout
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				var key [32]byte
				for i := range key {
					key[i] = byte(rand.Uint32())
				}
				r := Record{Key: key, Value: crashValue(key), Expiry: time.Now().Add(time.Hour), Version: Version{1, 1}}
				if _, err := s.Put(context.Background(), r); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				line := hex.EncodeToString(key[:]) + "\n"
				mu.Lock()
				os.Stdout.WriteString(line) // one write, unbuffered
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrash kills a writing process with SIGKILL at random moments; after
// every kill the database opens, passes the consistency check (its record
// counts included), and holds every record whose put was acknowledged.
func TestCrash(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns: the parent kills it
		return
	}
	dir := t.TempDir()
	var acked [][32]byte
	const rounds = 20
	for round := range rounds {
		killAfter := rand.IntN(60) // acknowledgements to read before the kill
		if round == 0 {
			killAfter = 5
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		kill := func() {
			if !killed {
				killed = true
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Errorf("kill: %v", err)
				}
			}
		}
		t.Cleanup(kill) // if the test stops early
		sc := bufio.NewScanner(out)
		n := 0
		if killAfter == 0 {
			kill()
		}
		for sc.Scan() {
			line := sc.Text()
			if len(line) != 64 || strings.HasPrefix(line, "PASS") || strings.HasPrefix(line, "ok") {
				continue
			}
			b, err := hex.DecodeString(line)
			if err != nil {
				continue // test framework output
			}
			acked = append(acked, [32]byte(b))
			n++
			if n == killAfter {
				kill()
			}
		}
		kill()
		err = cmd.Wait()
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() {
			t.Fatalf("round %d: child ended with %v, not by SIGKILL; stderr: %s", round, err, stderr.String())
		}

		s, err := Open(dir, DefaultConfig())
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("round %d: Check after kill: %v", round, err)
		}
		// The kept counts survive the kill exactly: no acknowledged record
		// is missing from them, and none the kill undid is in them.
		if st := mustMatchRecount(t, s, fmt.Sprintf("round %d, after kill", round)); st.ReplicaRecords < int64(len(acked)) {
			t.Fatalf("round %d: Stats() = %+v; want at least the %d acknowledged records", round, st, len(acked))
		}
		for _, k := range acked {
			r, err := s.Get(k)
			if err != nil || string(r.Value) != string(crashValue(k)) {
				t.Fatalf("round %d: acknowledged key %x: Get = %q, %v", round, k[:4], r.Value, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < rounds {
		t.Errorf("only %d acknowledged puts over %d rounds", len(acked), rounds)
	}
	t.Logf("%d acknowledged puts survived %d kills", len(acked), rounds)
}
