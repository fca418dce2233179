package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
)

var moreRE = regexp.MustCompile(`msg="… and (\d+) more refused requests like this in the last [0-9.]+m?s" status=(\d+) more=(\d+)( hook=(\S+))?$`)

// A flood of refused requests writes a bounded number of lines: per hook
// and status a few, then one line with how many more were refused, so
// every refusal is accounted for. Wrong URL tokens reach the log only as
// their prefix, and accepted events write nothing at info level.
func TestRefusalFloodLogsBounded(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: sqliteStore(t), api: rc.URL})
	const wrongToken = "wrong-token-5a1c9e7d3b"
	const n = 300
	kinds := []struct {
		path   string
		header http.Header
		status int
		hook   string
	}{
		{"/hooks/catch/oncloudwine", http.Header{"X-Oncloudwine-Signature": {strings.Repeat("ab", 32)}}, http.StatusUnauthorized, "oncloudwine"},
		{"/hooks/catch/no-such-hook", nil, http.StatusNotFound, ""},
		// A wrong token answers as an unknown hook does, and is alike.
		{"/hooks/catch/winesitting/" + wrongToken, nil, http.StatusNotFound, ""},
	}
	var wg sync.WaitGroup
	for _, k := range kinds {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n/4; i++ {
					req, _ := http.NewRequest(http.MethodPost, srv.url(k.path), bytes.NewReader([]byte(`{"n":`+strconv.Itoa(i)+`}`)))
					req.Header.Set("Content-Type", "application/json")
					for h, v := range k.header {
						req.Header[h] = v
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != k.status {
						t.Errorf("POST %s = %d, want %d", k.path, resp.StatusCode, k.status)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	body := payload(t, "winesitting-putaway-created.json")
	if status, out := srv.post(t, http.MethodPost, "/hooks/catch/winesitting/"+wsToken, body, nil); status != http.StatusAccepted {
		t.Fatalf("POST winesitting = %d %v", status, out)
	}
	// Stopping writes the summaries of the period still open.
	if err := srv.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := srv.output()

	want := map[int]int{http.StatusUnauthorized: n, http.StatusNotFound: 2 * n} // per status; each status has one kind here
	for status, sent := range want {
		lines, summaries, more := 0, 0, 0
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `msg="request refused" status=`+strconv.Itoa(status)+" ") {
				lines++
			}
			if m := moreRE.FindStringSubmatch(l); m != nil && m[2] == strconv.Itoa(status) {
				summaries++
				c, _ := strconv.Atoi(m[1])
				more += c
				if m[3] != m[1] {
					t.Errorf("summary %q: more=%s, the message says %s", l, m[3], m[1])
				}
				if wantHook := map[int]string{401: "oncloudwine", 404: ""}[status]; m[5] != wantHook {
					t.Errorf("summary %q: hook %q, want %q", l, m[5], wantHook)
				}
			}
		}
		if summaries == 0 {
			t.Errorf("status %d: no summary line for %d refusals", status, sent)
		}
		// Each period writes at most 10 lines and, when it held lines
		// back, one summary: only the last period may have none.
		if lines > 10*(summaries+1) {
			t.Errorf("status %d: %d lines with %d summaries: not bounded", status, lines, summaries)
		}
		if lines+more != sent {
			t.Errorf("status %d: %d lines + %d summed up = %d, want all %d refusals accounted for", status, lines, more, lines+more, sent)
		}
	}
	if strings.Contains(logs, wrongToken) || !strings.Contains(logs, "path=/hooks/catch/winesitting/wron…") {
		t.Errorf("the wrong token is not cut to its prefix in the log:\n%s", logs)
	}
	if strings.Contains(logs, "event accepted") {
		t.Errorf("an accepted event was logged at info level:\n%s", logs)
	}
}

// notJSON returns the lines of a log that are not JSON objects.
func notJSON(out string) []string {
	var bad []string
	for line := range strings.Lines(out) {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			bad = append(bad, line)
		}
	}
	return bad
}

// With --log-format json every line of the log is JSON, also what the
// Redis client says by itself while its Redis is down: that comes at
// debug, once the store's callers have logged the errors they met.
func TestJSONLogWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	url := redistest.Server(t)
	rc := newReceiver(t)
	s := start(t, serverOpts{store: url, api: rc.URL, args: []string{"--log-format", "json", "--log-level", "debug"}})
	if got := ingestWS(t, s); got != http.StatusAccepted {
		t.Fatalf("ingest = %d, want 202", got)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	_ = c.ShutdownNoSave(t.Context()).Err() // the connection ends with the server
	if got := ingestWS(t, s); got != http.StatusServiceUnavailable {
		t.Errorf("ingest with Redis down = %d, want 503", got)
	}
	s.waitLog(t, `"level":"DEBUG","msg":"redis client","detail":"`, 1)
	if bad := notJSON(s.output()); len(bad) > 0 {
		t.Errorf("%d lines of the JSON log are not JSON, the first: %q", len(bad), bad[0])
	}
}

// What a store says as it opens goes to the process's log in its format:
// an embedded file that keeps pages of another size than its URL asks.
func TestJSONLogOfTheStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "p.db")
	rc := newReceiver(t)
	first := start(t, serverOpts{store: "sqlite://" + path + "?page_size=2048", api: rc.URL})
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	s := start(t, serverOpts{store: "sqlite://" + path + "?page_size=4096", api: rc.URL, args: []string{"--log-format", "json"}})
	s.waitLog(t, `"level":"WARN","msg":"sqlitestore: the file keeps its pages: a page size applies to a new file only"`, 1)
	if bad := notJSON(s.output()); len(bad) > 0 {
		t.Errorf("%d lines of the JSON log are not JSON, the first: %q", len(bad), bad[0])
	}
}
