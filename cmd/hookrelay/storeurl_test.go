package main

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

// page_size in an embedded store's URL sizes the pages of the file the
// store makes, and a file that exists keeps its own; an option the store
// does not take, or a size it cannot use, stops the command with what is
// wrong, before any file is made.
func TestEmbeddedStorePageSize(t *testing.T) {
	dir := t.TempDir()
	pageSize := func(path string) int {
		t.Helper()
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("PRAGMA page_size").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	made := filepath.Join(dir, "made.db")
	for _, c := range []struct {
		url  string
		want int
	}{
		{"sqlite://" + made + "?page_size=2048", 2048},
		// Opened again with another size: the file keeps its pages.
		{"sqlite://" + made + "?page_size=8192", 2048},
		{"sqlite://" + filepath.Join(dir, "default.db"), 4096},
		{"file://" + filepath.Join(dir, "big.db") + "?page_size=16384", 16384},
	} {
		if code, out, errOut := run(t, nil, "keys", "create", "--name", "ci", "--store", c.url); code != 0 {
			t.Fatalf("keys create --store %s: exit %d, stdout %q, stderr %q", c.url, code, out, errOut)
		}
		path, _, _ := strings.Cut(strings.SplitN(c.url, "://", 2)[1], "?")
		if got := pageSize(path); got != c.want {
			t.Errorf("%s: pages of %d bytes, want %d", c.url, got, c.want)
		}
	}

	for _, c := range []struct{ query, want string }{
		{"page_size=1000", "page size 1000: want a power of two from 512 to 65536"},
		{"page_size=131072", "page size 131072: want a power of two from 512 to 65536"},
		{"page_size=0", "page_size=0: want a number of bytes, a power of two from 512 to 65536"},
		{"page_size=4k", "page_size=4k: want a number of bytes, a power of two from 512 to 65536"},
		{"page_size=2048&page_size=4096", "page_size given more than once"},
		{"cache=shared", `unknown option "cache": the embedded store takes page_size`},
		{"page_size=%zz", "options: invalid URL escape"},
	} {
		path := filepath.Join(dir, "refused.db")
		code, _, errOut := run(t, nil, "keys", "create", "--name", "ci", "--store", "sqlite://"+path+"?"+c.query)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("?%s: exit %d, stderr %q; want a failure saying %q", c.query, code, errOut, c.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("?%s was refused, but the file was made: %v", c.query, err)
		}
	}
}

// The commands that work on a store directly refuse a store that is not
// there, where a mistyped path or URL would make an empty one, and write
// nothing; `keys create`, which may make the first key before serve ever
// ran, makes the store and says where.
func TestOperatorCommandsNeedTheStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo", "hookrelay.db")
	redisURL := redistest.Server(t)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	own := redis.NewClient(opt)
	t.Cleanup(func() { own.Close() })
	for _, c := range []struct {
		name, url, where string
		empty            func() bool // nothing was written
	}{
		{"sqlite", "sqlite://" + missing, missing, func() bool {
			_, err := os.Stat(filepath.Dir(missing))
			return errors.Is(err, os.ErrNotExist)
		}},
		{"redis", redisURL, redisURL, func() bool {
			n, err := own.DBSize(t.Context()).Result()
			return err == nil && n == 0
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			commands := [][]string{
				{"keys", "list", "--store", c.url},
				{"keys", "revoke", "key_x", "--store", c.url},
				{"whatif", "--config", "../../testdata/demo/hookrelay.yaml", "--current", "../../testdata/demo/hookrelay.yaml", "--store", c.url},
			}
			if c.name == "sqlite" {
				// On Redis these face a store that may have lost every key
				// (TestResetAckWithoutRestart); a file must be there.
				commands = append(commands, []string{"store", "identity", "--store", c.url}, []string{"store", "reset-ack", "--store", c.url})
			}
			for _, args := range commands {
				code, out, errOut := run(t, nil, args...)
				want := " at " + c.where + ": give the --store (or HOOKRELAY_STORE) that serve runs with"
				if code != 2 || !strings.Contains(errOut, want) {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", args, code, out, errOut, want)
				}
				if !c.empty() {
					t.Fatalf("%v wrote a store", args)
				}
			}

			code, out, errOut := run(t, nil, "keys", "create", "--name", "first", "--store", c.url)
			if code != 0 || !strings.Contains(out, "created key") || !strings.HasPrefix(errOut, "made a new ") ||
				!strings.HasSuffix(errOut, " at "+c.where+": serve uses it with --store "+c.url+"\n") {
				t.Fatalf("keys create on a new store: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			code, out, errOut = run(t, nil, "keys", "list", "--store", c.url)
			if code != 0 || errOut != "" || !strings.Contains(out, "first") {
				t.Errorf("keys list after: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if code, _, errOut = run(t, nil, "keys", "create", "--name", "second", "--store", c.url); code != 0 || errOut != "" {
				t.Errorf("keys create on the store made: exit %d, stderr %q; want no notice", code, errOut)
			}
		})
	}
}
