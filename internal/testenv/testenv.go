// Package testenv decides what a test does when the machine lacks something
// the test needs (a tool, root, a kernel feature).
//
// Outside CI such a test skips with its reason, so `make test` passes on a
// developer's machine that lacks, say, systemd-analyze. In CI (the environment
// variable CI is "true"), .ci/run installs every tool the tests need, so a
// missing one is a failure: a skip there would read as a pass. The few tests
// that cannot run on the machines CI uses at all call Unsupported instead, and
// the README's Status section names each of them with its reason.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true, as .ci/run is run).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with reason outside CI and fails it in CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (in CI this test must run: .ci/run installs what it needs)", reason)
	}
	t.Skip(reason)
}

// Unsupported skips t with reason everywhere, CI included. It is for what the
// machines CI runs on cannot provide (for example a kernel without the netem
// qdisc); every caller is listed in the README's Status section.
func Unsupported(t testing.TB, reason string) {
	t.Helper()
	t.Skip("unsupported here: " + reason)
}
