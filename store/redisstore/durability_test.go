package redisstore_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// TestDurability asks servers of the test's own how they keep their data.
func TestDurability(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     redisstore.Durability
		persists bool
	}{
		{"nothing", nil, redisstore.Durability{}, false},
		{"aof", []string{"--appendonly", "yes"}, redisstore.Durability{AOF: true}, true},
		{"rdb", []string{"--save", "3600 1"}, redisstore.Durability{RDB: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisstore.Open(t.Context(), redistest.Server(t, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			d, err := s.Durability(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want || d.Persists() != tt.persists {
				t.Errorf("Durability = %+v (persists %t), want %+v (%t)", d, d.Persists(), tt.want, tt.persists)
			}
		})
	}
}

// TestReplicasOnline: a master without a replica is short of one, named in
// the error; once a replica of it has synced it is not; it is still short
// of two.
func TestReplicasOnline(t *testing.T) {
	masterURL := redistest.Server(t)
	s, err := redisstore.Open(t.Context(), masterURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := url.Parse(masterURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReplicasOnline(t.Context(), 0); err != nil {
		t.Errorf("ReplicasOnline(0) = %v, want nil", err)
	}
	err = s.ReplicasOnline(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), u.Host+" has 0 replica(s) online, 1 needed") {
		t.Fatalf("ReplicasOnline(1) without a replica = %v, want one naming %s", err, u.Host)
	}

	redistest.Replica(t, masterURL)
	waitReplicas(t, s, 1)
	if err := s.ReplicasOnline(t.Context(), 2); err == nil || !strings.Contains(err.Error(), "has 1 replica(s) online, 2 needed") {
		t.Errorf("ReplicasOnline(2) with one replica = %v", err)
	}
}

// waitReplicas waits up to 10 s for every master of s to have n replicas
// online, and fails the test if they do not.
func waitReplicas(t *testing.T, s *redisstore.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.ReplicasOnline(t.Context(), n)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReplicasOnline(%d) after 10s: %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
