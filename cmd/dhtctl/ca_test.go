package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durachord/durachord/crypto"
)

// runCLI runs dhtctl with args and returns the exit code and outputs.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"dhtctl"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCAInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, _, errOut := runCLI(t, "ca", "init", "--dir", dir); code != exitOK {
		t.Fatalf("ca init = %d (%s); want 0", code, errOut)
	}
	if _, err := crypto.LoadCA(dir); err != nil {
		t.Fatalf("LoadCA after ca init = %v", err)
	}
	code, _, errOut := runCLI(t, "ca", "init", "--dir", dir)
	if code != exitError || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("ca init over an existing CA = %d, %q; want 2 and one line saying it exists", code, errOut)
	}
	if code, _, _ := runCLI(t, "ca", "init"); code != exitError {
		t.Errorf("ca init without --dir = %d; want 2", code)
	}
	dir2 := filepath.Join(t.TempDir(), "ca2")
	code, out, _ := runCLI(t, "ca", "init", "--dir", dir2, "--json")
	var got map[string]string
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got["dir"] != dir2 {
		t.Errorf("ca init --json = %d, %q; want 0 and {\"dir\":%q,...}", code, out, dir2)
	}
}

func TestCertIssue(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	if err := crypto.InitCA(caDir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "node1")
	code, stdout, errOut := runCLI(t, "cert", "issue", "--ca", caDir, "--address", "127.0.0.5:7001", "--out", out)
	if code != exitOK {
		t.Fatalf("cert issue = %d (%s); want 0", code, errOut)
	}
	id, err := crypto.LoadIdentity(out)
	if err != nil {
		t.Fatalf("LoadIdentity(out) = %v", err)
	}
	if strings.TrimSpace(stdout) != id.ID.String() {
		t.Errorf("cert issue printed %q; want the node ID %s", stdout, id.ID)
	}
	if len(id.Leaf.IPAddresses) != 1 || id.Leaf.IPAddresses[0].String() != "127.0.0.5" {
		t.Errorf("certificate IP SANs = %v; want [127.0.0.5]", id.Leaf.IPAddresses)
	}
	fi, err := os.Stat(filepath.Join(out, "node.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("node.key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	t.Run("json", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "n")
		code, stdout, _ := runCLI(t, "cert", "issue", "--ca", caDir, "--address", "node-2.example:7001", "--out", out, "--json")
		var got struct{ ID, Address, Dir string }
		if code != exitOK || json.Unmarshal([]byte(stdout), &got) != nil {
			t.Fatalf("cert issue --json = %d, %q; want 0 and JSON", code, stdout)
		}
		id, err := crypto.LoadIdentity(out)
		if err != nil || got.ID != id.ID.String() || got.Address != "node-2.example:7001" || got.Dir != out {
			t.Errorf("cert issue --json = %+v (%v); want id %s, the address and dir %s", got, err, id.ID, out)
		}
		if len(id.Leaf.DNSNames) != 1 || id.Leaf.DNSNames[0] != "node-2.example" {
			t.Errorf("certificate DNS SANs = %v; want [node-2.example]", id.Leaf.DNSNames)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad-address", []string{"--ca", caDir, "--address", "no-port", "--out", t.TempDir()}, "invalid address"},
		{"bad-port", []string{"--ca", caDir, "--address", "h:99999", "--out", t.TempDir()}, "invalid address"},
		{"missing-ca", []string{"--ca", filepath.Join(t.TempDir(), "none"), "--address", "127.0.0.1:1", "--out", t.TempDir()}, "ca.crt"},
		{"existing-output", []string{"--ca", caDir, "--address", "127.0.0.1:1", "--out", out}, "--force"},
		{"no-address", []string{"--ca", caDir, "--out", t.TempDir()}, "address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"cert", "issue"}, tc.args...)...)
			if code != exitError || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("cert issue %v = %d, %q; want 2 and one line mentioning %q", tc.args, code, errOut, tc.want)
			}
		})
	}
	// The refused overwrite left the first identity alone; --force replaces it.
	if again, err := crypto.LoadIdentity(out); err != nil || again.ID != id.ID {
		t.Errorf("identity after refused overwrite = %v, %v; want %v", again, err, id.ID)
	}
	if code, stdout, _ := runCLI(t, "cert", "issue", "--ca", caDir, "--address", "127.0.0.1:1", "--out", out, "--force"); code != exitOK || strings.TrimSpace(stdout) == id.ID.String() {
		t.Errorf("cert issue --force = %d, %q; want 0 and a new ID", code, stdout)
	}
}

func TestCertRenew(t *testing.T) {
	dir := t.TempDir()
	caDir, tlsDir := filepath.Join(dir, "ca"), filepath.Join(dir, "tls")
	if code, _, errOut := runCLI(t, "ca", "init", "--dir", caDir); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errOut)
	}
	code, issued, errOut := runCLI(t, "cert", "issue", "--ca", caDir, "--address", "127.0.0.9:7400", "--out", tlsDir)
	if code != 0 {
		t.Fatalf("cert issue: exit %d: %s", code, errOut)
	}
	before, err := os.ReadFile(filepath.Join(tlsDir, "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	code, renewed, errOut := runCLI(t, "cert", "renew", "--ca", caDir, "--dir", tlsDir)
	if code != 0 || renewed != issued {
		t.Fatalf("cert renew: exit %d, id %q, stderr %q; want exit 0 and the issued id %q", code, renewed, errOut, issued)
	}
	after, err := os.ReadFile(filepath.Join(tlsDir, "node.crt"))
	if err != nil || string(after) == string(before) {
		t.Fatalf("cert renew left node.crt unchanged (%v)", err)
	}
	if code, _, errOut := runCLI(t, "cert", "renew", "--ca", caDir, "--dir", filepath.Join(dir, "missing")); code != 2 || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("cert renew of a missing folder: exit %d, stderr %q; want 2 and one line", code, errOut)
	}
}

func TestHMACNew(t *testing.T) {
	code, a, _ := runCLI(t, "hmac", "new")
	_, b, _ := runCLI(t, "hmac", "new")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a))
	if code != exitOK || err != nil || len(raw) != 32 {
		t.Fatalf("hmac new = %d, %q (%v); want 0 and 32 bytes of base64", code, a, err)
	}
	if a == b {
		t.Errorf("hmac new twice printed %q; want distinct keys", a)
	}
	if _, err := crypto.ParseKeyring(strings.NewReader(a + b)); err != nil {
		t.Errorf("ParseKeyring(two hmac new lines) = %v", err)
	}
	code, out, _ := runCLI(t, "hmac", "new", "--json")
	var got struct{ Key string }
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got.Key == "" {
		t.Errorf("hmac new --json = %d, %q; want 0 and {\"key\":..}", code, out)
	}
	if code, _, _ := runCLI(t, "hmac", "new", "extra"); code != exitError {
		t.Errorf("hmac new extra = %d; want 2", code)
	}
}
