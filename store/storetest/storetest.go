// Package storetest helps tests of other packages use a real store.Store.
package storetest

import (
	"testing"

	"github.com/durachord/durachord/store"
)

// OpenTemp opens a store in a fresh temporary directory with the default
// config. On cleanup it checks the database's consistency and closes it.
func OpenTemp(t testing.TB) *store.Store {
	t.Helper()
	return OpenTempConfig(t, store.DefaultConfig())
}

// OpenTempConfig is OpenTemp with a config.
func OpenTempConfig(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("store consistency check: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return s
}
