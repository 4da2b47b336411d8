// Package apitest provides an in-memory api.Service and a helper that serves
// it on a loopback port, for tests of the api package and of its users.
package apitest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// MemService is an in-memory api.Service: TTL 0 means DefaultTTL, expired
// values are absent. Safe for concurrent use.
type MemService struct {
	// DefaultTTL is used for a PUT with TTL 0; zero means one hour.
	DefaultTTL time.Duration

	mu      sync.Mutex // guards records, puts
	records map[[api.KeySize]byte]memRecord
	puts    int
}

type memRecord struct {
	value   []byte
	expires time.Time
}

// NewMemService returns an empty MemService.
func NewMemService() *MemService {
	return &MemService{records: make(map[[api.KeySize]byte]memRecord)}
}

// Put implements api.Service.
func (s *MemService) Put(_ context.Context, p api.Put) error {
	ttl := time.Duration(p.TTL) * time.Second
	if ttl == 0 {
		ttl = s.DefaultTTL
		if ttl == 0 {
			ttl = time.Hour
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[p.Key] = memRecord{value: append([]byte(nil), p.Value...), expires: time.Now().Add(ttl)}
	s.puts++
	return nil
}

// Get implements api.Service.
func (s *MemService) Get(_ context.Context, key [api.KeySize]byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	if !ok || !time.Now().Before(r.expires) {
		return nil, api.ErrNotFound
	}
	return append([]byte(nil), r.value...), nil
}

// Puts returns the number of PUTs stored so far.
func (s *MemService) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// Serve starts an api.Server for svc with cfg on a loopback port and returns
// the server and its address. The server is closed when the test ends.
func Serve(t testing.TB, cfg api.Config, svc api.Service) (*api.Server, string) {
	t.Helper()
	srv, err := api.NewServer(cfg, svc)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
		if err := <-served; err != api.ErrServerClosed {
			t.Errorf("Serve = %v; want %v", err, api.ErrServerClosed)
		}
	})
	return srv, l.Addr().String()
}
