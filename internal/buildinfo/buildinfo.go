// Package buildinfo says which build of durachord is running: the version
// and commit the Makefile stamps into the programs (-ldflags -X), or what
// the Go toolchain recorded when they were built otherwise.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by `make build`:
//
//	-X github.com/durachord/durachord/internal/buildinfo.version=...
//	-X github.com/durachord/durachord/internal/buildinfo.commit=...
var (
	version string
	commit  string
)

// Info is what a program prints for --version.
type Info struct {
	Version string // a release tag, git describe's output, or "devel"
	Commit  string // the commit built, or "unknown"
	Go      string // the Go toolchain that built it
}

// Read returns the build's information: what the link stamped, else what
// the toolchain recorded (a module version for `go install ...@vX`, the VCS
// revision for a build in a checkout), else "devel" and "unknown".
func Read() Info {
	return read(version, commit, debug.ReadBuildInfo)
}

func read(version, commit string, build func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: version, Commit: commit, Go: runtime.Version()}
	if bi, ok := build(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit == "" && info.Commit != "" {
			info.Commit += " (modified)"
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String is the one line --version prints after the program's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, i.Commit, i.Go)
}
