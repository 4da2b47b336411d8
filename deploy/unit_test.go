package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/durachord/durachord/internal/testenv"
)

const unitFile = "durachord.service"

// directives returns the unit's KEY=VALUE lines per "Section.Key", values in
// order of appearance.
func directives(t *testing.T, text string) map[string][]string {
	t.Helper()
	m := make(map[string][]string)
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not KEY=VALUE", unitFile, line)
			}
			m[section+"."+k] = append(m[section+"."+k], v)
		}
	}
	return m
}

func TestUnitDirectives(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	d := directives(t, string(text))
	want := map[string]string{
		"Service.Type":                    "notify",
		"Service.ExecStart":               "/usr/local/bin/dhtd --config /etc/durachord/config.toml",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.WatchdogSec":             "30s",
		"Service.StateDirectory":          "durachord",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.LockPersonality":         "yes",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectKernelLogs":       "yes",
		"Service.Restart":                 "on-failure",
		"Service.ReadOnlyPaths":           "/etc/durachord",
		"Install.WantedBy":                "multi-user.target",
	}
	for key, v := range want {
		if got := d[key]; !slices.Contains(got, v) {
			t.Errorf("%s: %s = %q; want %q among them", unitFile, key, got, v)
		}
	}
	if got := d["Service.SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("%s: SystemCallFilter = %q; want @system-service first", unitFile, got)
	}
	for _, key := range []string{"Service.TimeoutStopSec", "Service.LimitNOFILE"} {
		if len(d[key]) == 0 {
			t.Errorf("%s: %s is not set", unitFile, key)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify on a copy of the unit whose
// ExecStart names an executable that exists here (verify insists on it), and
// fails on any complaint about the unit, including the warnings verify prints
// for unknown keys and bad values while still exiting 0.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Skip(t, "systemd-analyze not installed; cannot verify the unit")
	}
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const binary = "ExecStart=/usr/local/bin/dhtd "
	if !strings.Contains(string(text), binary) {
		t.Fatalf("%s has no %q line to rewrite", unitFile, binary)
	}
	copyText := strings.Replace(string(text), binary, "ExecStart="+self+" ", 1)
	path := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(path, []byte(copyText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	var complaints []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, unitFile) {
			complaints = append(complaints, strings.TrimSpace(line))
		}
	}
	if err != nil || len(complaints) != 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
}
