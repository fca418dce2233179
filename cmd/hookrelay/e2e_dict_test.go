package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// A Redis store trains a dictionary from its first bodies and compresses
// the later ones with it: `serve` takes 600 payment webhooks, each
// forwarded to the receiver exactly as it came, the dictionary is in the
// store, and the events after it are stored with it (flag d in the head).
func TestDictEndToEnd(t *testing.T) {
	url := redistest.Server(t)
	config := relayConfig(t, `  - name: all
    when: "true"
    actions: [forward]
`, `  forward:
    url: ${DEMO_API_URL}/forward
    body_raw: true
`)
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: url, api: rc.URL, config: config})

	const n = 600
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = storetest.PaymentBody(i)
	}
	// The first 500 train the dictionary (256 KiB of them do); the rest
	// come once it is in use.
	send := func(from, to int) {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + g; i < to; i += 8 {
					resp, err := http.Post(srv.url(relayHook), "application/json", bytes.NewReader(bodies[i]))
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						t.Errorf("event %d: %s", i, resp.Status)
					}
				}
			}()
		}
		wg.Wait()
	}
	send(0, 500)
	c := redis.NewClient(mustParseRedisURL(t, url))
	defer c.Close()
	var dictKey string
	deadline := time.Now().Add(20 * time.Second)
	for dictKey == "" && time.Now().Before(deadline) {
		keys, err := c.Keys(t.Context(), "*dicts").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 1 && c.HExists(t.Context(), keys[0], "current").Val() {
			dictKey = keys[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dictKey == "" {
		t.Fatalf("no dictionary in the store after 500 bodies\n%s", srv.output())
	}
	send(500, n)

	got := rc.waitFor(t, "/forward", n)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Body)] = true
	}
	for i, b := range bodies {
		if !seen[string(b)] {
			t.Fatalf("body %d did not reach the receiver as it was sent", i)
		}
	}

	// The events after the dictionary are stored with it.
	keys, err := c.Keys(t.Context(), "*:evt:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]int{}
	for _, k := range keys {
		v, err := c.Get(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(v, "\n")
		parts := strings.Split(head, "|")
		if len(parts) < 3 {
			t.Fatalf("event %s: head %q", k, head)
		}
		flags[parts[2][len(parts[2])-1:]]++
	}
	if flags["d"] < n-500 {
		t.Errorf("events stored with the dictionary: %d of %d, want at least the %d sent after it (flags %v)", flags["d"], len(keys), n-500, flags)
	}
}
