package main

import (
	"bytes"
	"github.com/durachord/durachord/internal/buildinfo"
	"strings"
	"testing"
)

// Every usage mistake is one line on stderr and exit code 2, without the
// help text (which --help prints).
func TestUsageErrorsAreOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"get", "--bogus", "k"},
		{"status", "--admin"},
		{"dump"},
		{"cert", "issue", "--ca", "x"},
		{"cert", "issue", "--bogus"},
		{"backup"},
		{"compact"},
		{"restore", "--data-dir", "x"},
		{"compact", "--data-dir", "x", "extra"},
		{"put"},
		{"devnet", "--nodes", "0"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"dhtctl"}, args...), strings.NewReader(""), &out, &errb)
		if code != exitError || out.Len() != 0 || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("dhtctl %v: exit %d, stdout %d bytes, stderr %q; want exit 2, no stdout, one line", args, code, out.Len(), errb.String())
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"dump", "--help"}, {"compact", "--help"}, {"restore", "--help"}, {"cert", "issue", "--help"}} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"dhtctl"}, args...), strings.NewReader(""), &out, &errb); code != exitOK || out.Len() == 0 {
			t.Errorf("dhtctl %v: exit %d, %d bytes of help; want exit 0 and help", args, code, out.Len())
		}
	}
}

// TestVersion: dhtctl --version prints its version and the commit of the
// build, and exits 0.
func TestVersion(t *testing.T) {
	code, out, errOut := runCmd("--version")
	want := "dhtctl version " + buildinfo.Read().String()
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, errOut, want)
	}
}
