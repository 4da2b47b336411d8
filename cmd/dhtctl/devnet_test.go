package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durachord/durachord/config"
)

// TestDevnetConfigPprof: the nodes' config serves the profiler with --pprof
// and not without, and always names the ring's admin token.
func TestDevnetConfigPprof(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		dir := t.TempDir()
		nodes, err := devnetPrepare(dir, 2, pprof, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range nodes {
			cfg, err := config.Load(filepath.Join(nd.dir, "config.toml"))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.PProf != pprof {
				t.Errorf("pprof %v: node config has admin.pprof = %v", pprof, cfg.Admin.PProf)
			}
			if cfg.Admin.TokenFile != nd.AdminTokenFile || nd.AdminTokenFile == "" {
				t.Errorf("node config has admin.token_file %q; want %q", cfg.Admin.TokenFile, nd.AdminTokenFile)
			}
		}
	}
}

// TestPrintDevnetNamesTheRingPage: what devnet prints once the ring is up
// includes the commands to try and the ring page's address with the token
// file to read it from (not the token itself).
func TestPrintDevnetNamesTheRingPage(t *testing.T) {
	nodes := []*devnetNode{
		{ID: "aa", P2P: "127.0.0.1:1", API: "127.0.0.1:2", Admin: "127.0.0.1:3", DataDir: "/d1", AdminTokenFile: "/t/admin.token"},
		{ID: "bb", P2P: "127.0.0.1:4", API: "127.0.0.1:5", Admin: "127.0.0.1:6", DataDir: "/d2", AdminTokenFile: "/t/admin.token"},
	}
	var out bytes.Buffer
	printDevnet(&out, nodes)
	for _, want := range []string{"put --api 127.0.0.1:2", "get --api 127.0.0.1:5", "http://127.0.0.1:3/ui?token=$(cat /t/admin.token)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("devnet printed:\n%s\nwant a line with %q", out.String(), want)
		}
	}
}
