package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/internal/testenv"
)

// installDoc is the one set of install steps; its blocks marked
// "<!-- install-test: NAME -->" are what TestInstallAsDocumented runs.
const installDoc = "../docs/operations.md"

// The example addresses of installDoc and what each stands for here.
const (
	docNodeP2P   = "10.0.0.11:7400"
	docSeed1     = "10.0.0.12:7400"
	docSeed2     = "10.0.0.13:7400"
	docNodeAPI   = "127.0.0.1:7401"
	docNodeAdmin = "127.0.0.1:7410"
)

// docBlocks returns the fenced blocks of the markdown file path that follow a
// line "<!-- install-test: NAME -->", by NAME, in file order.
func docBlocks(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(`^<!-- install-test: ([a-z]+) -->$`)
	blocks := make(map[string][]string)
	var name string
	var body []string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && line == "```":
			blocks[name] = append(blocks[name], strings.Join(body, "\n")+"\n")
			name, body, inBlock = "", nil, false
		case inBlock:
			body = append(body, line)
		case name != "" && strings.HasPrefix(line, "```"):
			inBlock = true
		case name != "":
			t.Fatalf("%s: a marked block must follow its marker at once; found %q", path, line)
		default:
			if m := marker.FindStringSubmatch(line); m != nil {
				name = m[1]
			}
		}
	}
	if inBlock || name != "" {
		t.Fatalf("%s: the last marked block is not closed", path)
	}
	for _, want := range []string{"host", "cluster", "node", "config"} {
		if len(blocks[want]) == 0 {
			t.Fatalf("%s has no block marked install-test: %s", path, want)
		}
	}
	return blocks
}

// unitService returns the [Service] settings of a systemd unit file (the
// last value of a key that appears more than once).
func unitService(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := make(map[string]string)
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if ok {
				settings[k] = v
			}
		}
	}
	for _, k := range []string{"ExecStart", "User", "Group", "UMask", "WorkingDirectory", "StateDirectory", "StateDirectoryMode"} {
		if settings[k] == "" {
			t.Fatalf("%s: [Service] has no %s", path, k)
		}
	}
	return settings
}

// hostRoot holds the host's system folders as the install steps change them:
// a copy of /etc, and empty /usr/local/bin and /var/lib. Each script runs in
// a private mount namespace with these bound over the real folders, so the
// steps run exactly as written, as root, without touching the machine.
type hostRoot struct {
	etc, bin, varLib string
}

func newHostRoot(t *testing.T, dir string) hostRoot {
	t.Helper()
	h := hostRoot{etc: filepath.Join(dir, "etc"), bin: filepath.Join(dir, "usr-local-bin"), varLib: filepath.Join(dir, "var-lib")}
	for _, d := range []string{h.etc, h.bin, h.varLib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/etc/.", h.etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc: %v\n%s", err, out)
	}
	return h
}

// command returns a command that runs the bash script in dir inside a mount
// namespace with the host root's folders in place.
func (h hostRoot) command(dir, script string) *exec.Cmd {
	prelude := fmt.Sprintf("set -euo pipefail\nmount --bind %q /etc\nmount --bind %q /usr/local/bin\nmount --bind %q /var/lib\ncd %q\n",
		h.etc, h.bin, h.varLib, dir)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c", prelude+script)
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	return cmd
}

// run runs script as h.command does and fails the test if it fails.
func (h hostRoot) run(t *testing.T, what, dir, script string) {
	t.Helper()
	out, err := h.command(dir, "set -x\n"+script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	t.Logf("%s:\n%s", what, out)
}

// TestInstallAsDocumented follows docs/operations.md's install steps as
// written, as root: it installs the binaries, makes the service user, the
// cluster secrets and a node's certificate, keys and configuration with the
// documented owners and modes, then starts dhtd as the unit does (its
// ExecStart under its User and Group, with its UMask, WorkingDirectory and
// StateDirectory) and sees the node join a ring of two other nodes and serve
// puts and gets. The node must run as the service user: if it could not read
// its key files as that user, or refused their modes, it would not start.
func TestInstallAsDocumented(t *testing.T) {
	requireE2E(t)
	if os.Geteuid() != 0 {
		testenv.Skip(t, "install test: needs root (useradd, install -o, mount namespaces)")
	}
	for _, tool := range []string{"unshare", "setpriv", "useradd", "install", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, "install test: "+tool+" is missing")
		}
	}
	blocks := docBlocks(t, installDoc)
	unit := unitService(t, "../deploy/durachord.service")

	c := NewCluster(t, ClusterOptions{})
	dir := t.TempDir()
	host := newHostRoot(t, filepath.Join(dir, "host"))
	// The copy of the repository the steps install from.
	repo := filepath.Join(dir, "repo")
	for _, d := range []string{"bin", "deploy"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range [][2]string{{dhtdPath(), "bin/dhtd"}, {dhtctlPath(), "bin/dhtctl"}, {"../deploy/durachord.service", "deploy/durachord.service"}} {
		if out, err := exec.Command("cp", f[0], filepath.Join(repo, f[1])).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", f[0], err, out)
		}
	}
	// The operator's working folder, where the cluster secrets are made.
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}

	host.run(t, "install steps: host", repo, strings.Join(blocks["host"], ""))
	host.run(t, "install steps: cluster", work, strings.Join(blocks["cluster"], ""))

	// Two plain nodes of the same cluster (its CA and HMAC keys) form the
	// ring the installed node joins.
	ca, err := crypto.LoadCA(filepath.Join(work, "ca"))
	if err != nil {
		t.Fatalf("LoadCA of the documented CA: %v", err)
	}
	seeds := []*Node{
		c.NewNode(NodeOptions{CA: ca, HMACKeys: filepath.Join(work, "hmac.keys")}),
		c.NewNode(NodeOptions{CA: ca, HMACKeys: filepath.Join(work, "hmac.keys")}),
	}
	seeds[0].Start()
	seeds[1].Start(seeds[0].P2P)

	// The installed node's addresses stand in for the documented ones.
	ip := c.ipBase + strconv.Itoa(c.takeIP())
	nodeP2P, nodeAPI, nodeAdmin := freePort(t, ip), freePort(t, ip), freePort(t, ip)
	subst := strings.NewReplacer(docNodeP2P, nodeP2P, docSeed1, seeds[0].P2P, docSeed2, seeds[1].P2P,
		docNodeAPI, nodeAPI, docNodeAdmin, nodeAdmin)
	nodeSteps := subst.Replace(strings.Join(blocks["node"], ""))
	config := subst.Replace(strings.Join(blocks["config"], ""))
	for _, text := range []string{nodeSteps, config} {
		if strings.Contains(text, "10.0.0.") {
			t.Fatalf("the install steps name an address this test does not map:\n%s", text)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	host.run(t, "install steps: node", work, nodeSteps)

	// Start the node as the unit does. systemd makes StateDirectory, owned
	// by User and Group with StateDirectoryMode, before ExecStart.
	state := "/var/lib/" + unit["StateDirectory"]
	start := fmt.Sprintf("install -d -m %s -o %s -g %s %s\ncd %s\numask %s\nexec setpriv --reuid=%s --regid=%s --init-groups %s\n",
		unit["StateDirectoryMode"], unit["User"], unit["Group"], state,
		unit["WorkingDirectory"], unit["UMask"], unit["User"], unit["Group"], unit["ExecStart"])
	t.Logf("starting the installed node:\n%s", start)

	n := &Node{c: c, Name: "installed", IP: ip, P2P: nodeP2P, API: nodeAPI, Admin: nodeAdmin, member: true,
		DataDir: filepath.Join(host.varLib, unit["StateDirectory"]), LogPath: filepath.Join(dir, "installed.log")}
	n.ID = certID(t, filepath.Join(work, "node11", "node.crt"))
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.mu.Lock()
	n.launch(host.command(work, start), logf)
	cmd := n.cmd
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	poll(t, ctx, 100*time.Millisecond, "the installed node joins", func() string {
		if !n.Running() {
			t.Fatalf("the installed node exited:\n%s", tail(n.LogPath, 20))
		}
		st, err := n.Status(ctx)
		switch {
		case err != nil:
			return err.Error()
		case !st.Ready:
			return "not ready"
		}
		return ""
	})
	c.WaitStable(ctx)

	// It runs as the service user, and its data directory is that user's.
	uid := processUID(t, cmd.Process.Pid)
	wantUID := passwdUID(t, filepath.Join(host.etc, "passwd"), unit["User"])
	if uid != wantUID {
		t.Fatalf("the installed node runs as uid %d; want %d (%s)", uid, wantUID, unit["User"])
	}

	// Puts through one node are read through another, both ways.
	for i, pair := range [][2]*Node{{n, seeds[0]}, {seeds[1], n}} {
		key := testKey("install", i)
		value := []byte(fmt.Sprintf("installed as documented %d", i))
		if err := pair[0].Dial(ctx).Put(ctx, api.Put{Key: key, Value: value, TTL: 600}); err != nil {
			t.Fatalf("Put via %s: %v", pair[0].Name, err)
		}
		reader := pair[1].Dial(ctx)
		poll(t, ctx, 50*time.Millisecond, "get through "+pair[1].Name, func() string {
			got, err := reader.Get(ctx, key)
			if err != nil {
				return fmt.Sprintf("Get(%x) = %v", key[:4], err)
			}
			if !bytes.Equal(got, value) {
				return fmt.Sprintf("Get(%x) = %q; want %q", key[:4], got, value)
			}
			return ""
		})
	}
	fi, err := os.Stat(filepath.Join(n.DataDir, "records.db"))
	if err != nil {
		t.Fatalf("the installed node's database: %v", err)
	}
	if got := fileUID(fi); got != wantUID {
		t.Errorf("records.db is owned by uid %d; want %d (%s)", got, wantUID, unit["User"])
	}
}

// takeIP reserves the cluster's next 127.x address.
func (c *Cluster) takeIP() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ip := c.nextIP
	c.nextIP++
	return ip
}

// certID returns the node ID of the PEM certificate at path.
func certID(t *testing.T, path string) chord.ID {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return crypto.NodeID(cert)
}

// processUID returns the real uid of a running process.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				uid, err := strconv.Atoi(f[0])
				if err == nil {
					return uid
				}
			}
		}
	}
	t.Fatalf("/proc/%d/status has no Uid line", pid)
	return -1
}

// passwdUID returns the uid of user in the passwd file at path.
func passwdUID(t *testing.T, path, user string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) > 2 && f[0] == user {
			uid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("%s: uid of %s: %v", path, user, err)
			}
			return uid
		}
	}
	t.Fatalf("%s has no user %s", path, user)
	return -1
}

// fileUID returns the owner of a file.
func fileUID(fi os.FileInfo) int {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1
	}
	return int(st.Uid)
}
