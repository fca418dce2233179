package redisstore_test

import (
	"testing"

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
