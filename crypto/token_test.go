package crypto_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/durachord/durachord/crypto"
)

func TestLoadToken(t *testing.T) {
	tok, err := crypto.NewToken()
	if err != nil {
		t.Fatalf("NewToken() = %v", err)
	}
	other, err := crypto.NewToken()
	if err != nil {
		t.Fatalf("NewToken() = %v", err)
	}
	if len(tok) != 43 || tok == other {
		t.Fatalf("NewToken() = %q, then %q; want two different 43-character tokens", tok, other)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr error
	}{
		{"new token with newline", tok + "\n", 0o600, nil},
		{"readable by group", tok + "\n", 0o640, crypto.ErrInsecureFile},
		{"readable by others", tok, 0o604, crypto.ErrInsecureFile},
		{"too short", "short-token\n", 0o600, crypto.ErrInvalidToken},
		{"empty", "\n", 0o600, crypto.ErrInvalidToken},
		{"space inside", "0123456789 abcdefghij", 0o600, crypto.ErrInvalidToken},
		{"two lines", tok + "\n" + other + "\n", 0o600, crypto.ErrInvalidToken},
		{"not ASCII", "0123456789abcdéfghij", 0o600, crypto.ErrInvalidToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := crypto.LoadToken(p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadToken(%q, mode %04o) = %v; want %v", tt.content, tt.mode, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !got.Equal(tok) || got.String() != tok {
				t.Errorf("LoadToken: Equal(%q) = false or String() = %q; want the file's token", tok, got.String())
			}
			for _, wrong := range []string{"", other, tok[:len(tok)-1], tok + "x", " " + tok} {
				if got.Equal(wrong) {
					t.Errorf("Equal(%q) = true; want false", wrong)
				}
			}
		})
	}
	if _, err := crypto.LoadToken(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadToken(absent) = %v; want %v", err, os.ErrNotExist)
	}
}
