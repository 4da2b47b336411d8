package main

import (
	"path/filepath"
	"testing"

	"github.com/durachord/durachord/config"
)

// TestDevnetConfigPprof: the nodes' config serves the profiler with --pprof
// and not without, and always names the ring's admin token.
func TestDevnetConfigPprof(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		dir := t.TempDir()
		nodes, err := devnetPrepare(dir, 2, pprof)
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
