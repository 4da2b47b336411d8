package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestRead: what the link stamped wins; without it the toolchain's module
// version and VCS revision are used (a modified tree said so); with neither,
// "devel" and "unknown".
func TestRead(t *testing.T) {
	recorded := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: version}, Settings: settings}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "abc123"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, tc := range []struct {
		name            string
		version, commit string
		build           func() (*debug.BuildInfo, bool)
		want            Info
	}{
		{"stamped", "v1.2.0", "f00d", recorded("v0.9.0", rev), Info{Version: "v1.2.0", Commit: "f00d"}},
		{"module and revision", "", "", recorded("v0.9.0", rev), Info{Version: "v0.9.0", Commit: "abc123"}},
		{"checkout with changes", "", "", recorded("(devel)", rev, dirty), Info{Version: "devel", Commit: "abc123 (modified)"}},
		{"nothing recorded", "", "", none, Info{Version: "devel", Commit: "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := read(tc.version, tc.commit, tc.build)
			if got.Version != tc.want.Version || got.Commit != tc.want.Commit || got.Go == "" {
				t.Errorf("read = %+v; want version %q, commit %q and the Go version", got, tc.want.Version, tc.want.Commit)
			}
			if s := got.String(); !strings.Contains(s, got.Version) || !strings.Contains(s, got.Commit) {
				t.Errorf("String() = %q; want the version and the commit in it", s)
			}
		})
	}
}
