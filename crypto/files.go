package crypto

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names in a CA directory and in a node's TLS directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// outFile is a file to write: its name in the directory, content and mode.
type outFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// writeFiles writes files into dir (created with mode 0700 if missing). Unless
// overwrite is set, it first checks that none of them exists and fails with
// ErrExists naming the first that does; files are then created exclusively,
// so a concurrent writer cannot be overwritten either. On failure, files
// created by this call are removed.
func writeFiles(dir string, files []outFile, overwrite bool) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if !overwrite {
		for _, f := range files {
			p := filepath.Join(dir, f.name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s: %w (refusing to overwrite)", p, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				_ = os.Remove(p) // best effort: the write error is what matters
			}
		}
	}()
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if overwrite {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		fh, err := os.OpenFile(p, flags, f.mode)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w (refusing to overwrite)", p, ErrExists)
			}
			return fmt.Errorf("create %s: %w", p, err)
		}
		created = append(created, p)
		// An existing file keeps its mode on O_TRUNC: set it explicitly.
		if err := fh.Chmod(f.mode); err != nil {
			_ = fh.Close()
			return fmt.Errorf("chmod %s: %w", p, err)
		}
		if _, err := fh.Write(f.data); err != nil {
			_ = fh.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := fh.Sync(); err != nil {
			_ = fh.Close()
			return fmt.Errorf("sync %s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("close %s: %w", p, err)
		}
	}
	return nil
}

// readSecretFile reads a file that must not be accessible by group or others.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: %w; want 0600 (chmod 600 %s)", path, perm, ErrInsecureFile, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	return b, nil
}

// pathError names path once: "PATH: no such file or directory".
func pathError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// readFile reads a public file, naming it in errors.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, pathError(path, err)
	}
	return b, nil
}
