package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/internal/testenv"
)

func TestCompletionCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrSub string
	}{
		{"bash", []string{"bash"}, exitOK, bashCompletion, ""},
		{"zsh", []string{"zsh"}, exitOK, zshCompletion, ""},
		{"unknown shell", []string{"fish"}, exitError, "", `unknown shell "fish"`},
		{"no shell", nil, exitError, "", "want one shell"},
		{"two shells", []string{"bash", "zsh"}, exitError, "", "want one shell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"dhtctl", "completion"}, tt.args...)
			code := run(args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("run(%q) = %d; want %d (stderr %q)", args, code, tt.wantCode, stderr.String())
			}
			if got := stdout.String(); got != tt.wantOut {
				t.Errorf("run(%q) printed %q; want %q", args, got, tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErrSub) {
				t.Errorf("run(%q) stderr = %q; want it to contain %q", args, stderr.String(), tt.wantErrSub)
			}
		})
	}
}

// The copies for packagers must be what the command prints.
func TestCompletionScriptsInTree(t *testing.T) {
	tests := []struct {
		shell, path string
	}{
		{"bash", "../../deploy/completion/dhtctl.bash"},
		{"zsh", "../../deploy/completion/_dhtctl"},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			b, err := os.ReadFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := completionScript(tt.shell)
			if string(b) != want {
				t.Errorf("%s differs from `dhtctl completion %s`; regenerate it: bin/dhtctl completion %s > %s",
					tt.path, tt.shell, tt.shell, strings.TrimPrefix(tt.path, "../../"))
			}
		})
	}
}

// TestBashCompletion drives the bash script against a real dhtctl binary, as
// bash does when the user presses Tab.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Skip(t, "no bash on PATH")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Skip(t, "no go tool on PATH to build dhtctl")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	build := exec.CommandContext(ctx, goTool, "build", "-o", filepath.Join(dir, "dhtctl"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "dhtctl.bash")
	if err := os.WriteFile(script, []byte(bashCompletion), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		line string
		want []string
	}{
		{"dhtctl st", []string{"status"}},
		{"dhtctl c", []string{"compact", "ca", "cert", "completion"}},
		{"dhtctl completion ", []string{"bash", "zsh"}},
		{"dhtctl completion z", []string{"zsh"}},
		{"dhtctl status --ad", []string{"--admin", "--admin-token-file"}},
		// HOST:PORT before the cursor must stay one argument.
		{"dhtctl status --admin 127.0.0.1:7410 --j", []string{"--json"}},
		{"dhtctl nosuchcommand", nil},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c",
				`source "$SCRIPT" && COMP_LINE=$LINE && COMP_POINT=${#LINE} && _dhtctl_complete && printf '%s\n' "${COMPREPLY[@]}"`)
			cmd.Env = append(os.Environ(), "SCRIPT="+script, "LINE="+tt.line,
				"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bash: %v", err)
			}
			got := strings.Fields(string(out))
			if !slices.Equal(got, tt.want) {
				t.Errorf("complete %q = %q; want %q", tt.line, got, tt.want)
			}
		})
	}
}
