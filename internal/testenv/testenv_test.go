package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helpers are run in a child test process so that a Skip and a Fatal can
// be observed from outside, as `go test` reports them.
const childEnv = "TESTENV_CHILD"

func TestChild(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		return // not the child: nothing to do
	case "skip":
		Skip(t, "tool missing")
	case "unsupported":
		Unsupported(t, "no such kernel feature")
	}
}

func TestSkipFailsInCIOnly(t *testing.T) {
	tests := []struct {
		helper, ci string
		wantFail   bool
		wantOutput string
	}{
		{"skip", "", false, "--- SKIP: TestChild"},
		{"skip", "true", true, "in CI this test must run"},
		{"unsupported", "", false, "unsupported here: no such kernel feature"},
		{"unsupported", "true", false, "unsupported here: no such kernel feature"},
	}
	for _, tt := range tests {
		t.Run(tt.helper+"/CI="+tt.ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+tt.helper, "CI="+tt.ci)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Errorf("child failed = %v; want %v\n%s", failed, tt.wantFail, out)
			}
			if !strings.Contains(string(out), tt.wantOutput) {
				t.Errorf("child output lacks %q:\n%s", tt.wantOutput, out)
			}
		})
	}
}
