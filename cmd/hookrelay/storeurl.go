package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// defaultStorePath is the embedded store used when no --store is given.
const defaultStorePath = "hookrelay.db"

// backend is a store with the operator methods: both backends are.
type backend interface {
	store.Store
	store.Admin
	store.Pruner
}

// openStore opens the store a URL names: redis://host:port/db (or rediss://)
// for Redis, sqlite:///abs/path.db or sqlite://relative.db for the embedded
// store, and the embedded default when raw is empty.
func openStore(ctx context.Context, raw string) (backend, string, error) {
	if raw == "" {
		s, err := sqlitestore.Open(ctx, defaultStorePath)
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", defaultStorePath, err)
		}
		abs, _ := filepath.Abs(defaultStorePath)
		return s, "sqlite://" + abs + " (the embedded default: no --store given)", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("store URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "redis", "rediss":
		s, err := redisstore.Open(ctx, raw)
		if err != nil {
			return nil, "", fmt.Errorf("open Redis store %s: %w", u.Redacted(), err)
		}
		return s, u.Redacted(), nil
	case "sqlite", "sqlite3", "file":
		path := strings.TrimPrefix(raw, u.Scheme+"://")
		if path == "" {
			return nil, "", fmt.Errorf("store URL %q names no file: use sqlite:///abs/path.db or sqlite://relative.db", raw)
		}
		s, err := sqlitestore.Open(ctx, path)
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", path, err)
		}
		return s, "sqlite://" + path, nil
	}
	return nil, "", fmt.Errorf("store URL %q: unknown scheme %q (use redis://host:port/db or sqlite:///path/file.db)", raw, u.Scheme)
}
