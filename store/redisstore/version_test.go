package redisstore

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// TestOpenTriesSetNXGet: Open leaves the probe key set by its check, and
// a store opened again (the key there) opens too.
func TestOpenTriesSetNXGet(t *testing.T) {
	url, probe := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t)), ""
	for range 2 {
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		probe = s.k.probe()
		_ = s.Close()
	}
	if n, err := redistest.Client(t).Exists(t.Context(), probe).Result(); err != nil || n != 1 {
		t.Errorf("probe key %s after Open: exists = %d, %v", probe, n, err)
	}
}

// TestSetNXGetRefused: a server's syntax error (a real one, to SET with
// NX and XX together) is what an older server answers to SET with NX and
// GET; it is told with the server's version and what to do. Other errors
// are not taken for it.
func TestSetNXGetRefused(t *testing.T) {
	c := redistest.Client(t)
	err := c.Do(t.Context(), "set", redistest.Prefix(t)+":x", "v", "nx", "xx").Err()
	if err == nil || !isSyntaxError(err) {
		t.Fatalf("SET NX XX = %v, want a syntax error", err)
	}
	msg := setNXGetRefused(err, "6.2.14").Error()
	for _, want := range []string{"Redis 6.2.14", "SET with NX and GET", "syntax error", "Redis 7.0 or later"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if msg := setNXGetRefused(err, "").Error(); !strings.Contains(msg, "runs a Redis,") {
		t.Errorf("error without a version: %q", msg)
	}
	if isSyntaxError(redis.Nil) {
		t.Error("redis.Nil taken for a syntax error")
	}
	ro := c.Do(t.Context(), "eval", "return redis.error_reply('READONLY You cannot write against a read only replica.')", 0).Err()
	if ro == nil || isSyntaxError(ro) {
		t.Errorf("a replica's refusal %v taken for a syntax error", ro)
	}
}
