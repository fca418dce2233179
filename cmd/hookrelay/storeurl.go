package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
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

// storeOpening says how a command opens its store.
type storeOpening struct {
	keys *seal.Keys   // seal what is written, open what is sealed; nil: neither
	log  *slog.Logger // where the store logs; nil: slog's default logger
	// create makes a store that is not there (serve, and the first key
	// made before serve ever ran); without it such a store is refused,
	// where a mistyped path or URL would make an empty one.
	create bool
	// lost: the command is for a store that lost its data (store reset-ack,
	// store identity), which on Redis may have lost every key of the store
	// before a running process marked the loss: a Redis that holds none is
	// opened all the same. An embedded store's file must still be there.
	lost bool
	// made, when set, is told where a store was made.
	made io.Writer
}

// openStore opens the store a URL names: redis://host:port/db (or rediss://)
// for one Redis server, redis+cluster://host:port?addr=host2:port2&… (or
// rediss+cluster://) for a Redis Cluster, sqlite:///abs/path.db or
// sqlite://relative.db for the embedded store, and the embedded default
// when raw is empty.
func openStore(ctx context.Context, raw string, o storeOpening) (backend, string, error) {
	if raw == "" {
		abs, _ := filepath.Abs(defaultStorePath)
		where := abs + " (the embedded default: no --store given)"
		made, err := o.check(defaultStorePath, where)
		if err != nil {
			return nil, "", err
		}
		s, err := sqlitestore.Open(ctx, defaultStorePath, sqlitestore.WithKeys(o.keys), sqlitestore.WithLogger(o.log))
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", defaultStorePath, err)
		}
		if made {
			o.tell("embedded store at "+abs, "sqlite://"+abs)
		}
		return s, "sqlite://" + where, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password included.
		return nil, "", errors.New("store URL: malformed URL (look for a stray % or an unescaped character)")
	}
	switch u.Scheme {
	case "redis", "rediss", "redis+cluster", "rediss+cluster":
		opts := []redisstore.Option{redisstore.WithKeys(o.keys), redisstore.WithLogger(o.log)}
		if !o.create && !o.lost {
			opts = append(opts, redisstore.WithExisting())
		}
		s, err := redisstore.Open(ctx, raw, opts...)
		if errors.Is(err, redisstore.ErrNoStore) {
			return nil, "", missing("store at " + u.Redacted())
		}
		if err != nil {
			return nil, "", fmt.Errorf("open Redis store %s: %w", u.Redacted(), err)
		}
		if s.Created() {
			o.tell("store at "+u.Redacted(), u.Redacted())
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
		abs, _ := filepath.Abs(path)
		made, err := o.check(path, abs)
		if err != nil {
			return nil, "", err
		}
		s, err := sqlitestore.Open(ctx, path, append(opts, sqlitestore.WithKeys(o.keys), sqlitestore.WithLogger(o.log))...)
		if err != nil {
			return nil, "", fmt.Errorf("open embedded store %s: %w", path, err)
		}
		if made {
			o.tell("embedded store at "+abs, "sqlite://"+abs)
		}
		return s, "sqlite://" + path, nil
	}
	return nil, "", fmt.Errorf("store URL %s: unknown scheme %q (use redis://host:port/db, redis+cluster://host:port?addr=host2:port2 or sqlite:///path/file.db)", u.Redacted(), u.Scheme)
}

// check reports whether the embedded store at path (named as where) is
// yet to be made, and refuses it then unless o.create.
func (o storeOpening) check(path, where string) (bool, error) {
	_, err := os.Stat(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return false, nil // opening it says what else may be wrong
	}
	if !o.create {
		return false, missing("embedded store at " + where)
	}
	return true, nil
}

// missing refuses the store that what names ("store at redis://…"): it is
// not there.
func missing(what string) error {
	return &exitError{code: 2, err: fmt.Errorf("no %s: give the --store (or HOOKRELAY_STORE) that serve runs with; serve makes the store when it first starts", what)}
}

// tell tells o.made that the store what names was made, and the --store
// that serve opens it with.
func (o storeOpening) tell(what, storeURL string) {
	if o.made != nil {
		fmt.Fprintf(o.made, "made a new %s: serve uses it with --store %s\n", what, storeURL)
	}
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
