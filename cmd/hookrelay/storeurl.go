package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
	"github.com/hookrelay/hookrelay/store/seal"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

// defaultStorePath is the embedded store used when no --store is given.
const defaultStorePath = "hookrelay.db"

// backend is a store with the operator methods: both backends are.
type backend interface {
	store.Store
	store.Admin
	store.Pruner
	store.Resealer
}

// openStore opens the store a URL names: redis://host:port/db (or rediss://)
// for one Redis server, redis+cluster://host:port?addr=host2:port2&… (or
// rediss+cluster://) for a Redis Cluster, sqlite:///abs/path.db or
// sqlite://relative.db for the embedded store, and the embedded default
// when raw is empty.
func openStore(ctx context.Context, raw string) (backend, string, error) {
	return openSealedStore(ctx, raw, nil, nil)
}

// openSealedStore is openStore for a store that seals the events it writes
// with keys and opens those sealed with any of them, and that writes what
// it has to say to log; keys and log may be nil (slog's default logger).
func openSealedStore(ctx context.Context, raw string, keys *seal.Keys, log *slog.Logger) (backend, string, error) {
	if raw == "" {
		s, err := sqlitestore.Open(ctx, defaultStorePath, sqlitestore.WithKeys(keys), sqlitestore.WithLogger(log))
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", defaultStorePath, err)
		}
		abs, _ := filepath.Abs(defaultStorePath)
		return s, "sqlite://" + abs + " (the embedded default: no --store given)", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password included.
		return nil, "", errors.New("store URL: malformed URL (look for a stray % or an unescaped character)")
	}
	switch u.Scheme {
	case "redis", "rediss", "redis+cluster", "rediss+cluster":
		s, err := redisstore.Open(ctx, raw, redisstore.WithKeys(keys), redisstore.WithLogger(log))
		if err != nil {
			return nil, "", fmt.Errorf("open Redis store %s: %w", u.Redacted(), err)
		}
		return s, u.Redacted(), nil
	case "sqlite", "sqlite3", "file":
		path, query, _ := strings.Cut(strings.TrimPrefix(raw, u.Scheme+"://"), "?")
		if path == "" {
			return nil, "", fmt.Errorf("store URL %q names no file: use sqlite:///abs/path.db or sqlite://relative.db", raw)
		}
		opts, err := sqliteOptions(query)
		if err != nil {
			return nil, "", fmt.Errorf("store URL %s: %w", raw, err)
		}
		s, err := sqlitestore.Open(ctx, path, append(opts, sqlitestore.WithKeys(keys), sqlitestore.WithLogger(log))...)
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", path, err)
		}
		return s, "sqlite://" + path, nil
	}
	return nil, "", fmt.Errorf("store URL %s: unknown scheme %q (use redis://host:port/db, redis+cluster://host:port?addr=host2:port2 or sqlite:///path/file.db)", u.Redacted(), u.Scheme)
}

// sqliteOptions reads the options of an embedded store's URL (what follows
// its '?'): page_size, the size in bytes of a new file's pages.
func sqliteOptions(query string) ([]sqlitestore.Option, error) {
	if query == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	var opts []sqlitestore.Option
	for name, values := range q {
		if name != "page_size" {
			return nil, fmt.Errorf("unknown option %q: the embedded store takes page_size", name)
		}
		if len(values) != 1 {
			return nil, errors.New("page_size given more than once")
		}
		// The store says which sizes it takes.
		n, err := strconv.Atoi(values[0])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("page_size=%s: want a number of bytes, a power of two from 512 to 65536", values[0])
		}
		opts = append(opts, sqlitestore.WithPageSize(n))
	}
	return opts, nil
}
