package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// sealedToken is an elevated OrderCloud UserToken that must never be
// readable from the store's files, keys or traffic.
const sealedToken = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiQnV5ZXJBZG1pbiJ9.SEALED-at-rest-q7Zx91Lm"

// sendSealed posts a signed OrderCloud event carrying sealedToken (the
// LogID made unique by n) in its body and in a header, and returns its id.
func sendSealed(t *testing.T, srv *server, n int) string {
	t.Helper()
	body := bytes.Replace(payload(t, "ordercloud-buyer-user-created.json"), []byte(`"UserToken": "`), []byte(`"UserToken": "`+sealedToken+`", "Was": "`), 1)
	body = bytes.Replace(body, []byte(`"LogID": "`), []byte(fmt.Sprintf(`"LogID": "sealed-%d-`, n)), 1)
	h := ocSign(body)
	h.Set("X-Oc-Usertoken", sealedToken)
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/ordercloud", body, h)
	id, _ := out["id"].(string)
	if status != http.StatusAccepted || !strings.HasPrefix(id, "evt_") {
		t.Fatalf("POST = %d %v, want 202 with an id", status, out)
	}
	return id
}

// readSealed reads the events with keys and checks that each holds the
// token in its body and header.
func readSealed(t *testing.T, url string, keys *seal.Keys, ids ...string) {
	t.Helper()
	st, _, err := openStore(context.Background(), url, storeOpening{keys: keys, create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range ids {
		e, err := st.Event(context.Background(), id)
		if err != nil {
			t.Fatalf("Event(%s): %v", id, err)
		}
		if !bytes.Contains(e.Body, []byte(sealedToken)) || e.Headers["x-oc-usertoken"] != sealedToken {
			t.Fatalf("event %s read back without its token: headers %v", id, e.Headers)
		}
	}
}

// rawStore is every byte a copy of the store would show: the SQLite file
// with its -wal and -shm, or every key under the Redis prefix by type and
// as DUMP serialises it. Read with no process on the store.
func rawStore(t *testing.T, url string) []byte {
	t.Helper()
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		return storetest.RawFiles(t, path)
	}
	_, prefix, _ := strings.Cut(url, "prefix=")
	return redistest.Dump(t, redistest.Client(t), prefix)
}

// storedEvents is each stored event as stored (its row's columns, its
// string), by id.
func storedEvents(t *testing.T, url string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT id, seal_key || '|' || headers || '|' || query || '|' || quote(body) || '|' || trace FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			out[id] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 {
			t.Fatal("no stored events found")
		}
		return out
	}
	_, prefix, _ := strings.Cut(url, "prefix=")
	c := redistest.Client(t)
	iter := c.Scan(context.Background(), 0, prefix+":*:evt:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		_, id, _ := strings.Cut(iter.Val(), ":evt:")
		out[id] = c.Get(context.Background(), iter.Val()).Val()
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no stored events found")
	}
	return out
}

// monitor captures what the test Redis server is sent (MONITOR) until
// the returned function is called, which returns the capture.
func monitor(t *testing.T) func() string {
	t.Helper()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if opt.Password != "" {
		fmt.Fprintf(conn, "AUTH %s\r\n", opt.Password)
	}
	fmt.Fprintf(conn, "MONITOR\r\n")
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		once := sync.OnceFunc(func() { close(started) })
		for sc.Scan() {
			if sc.Text() == "+OK" {
				once()
			}
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		once()
	}()
	<-started
	return func() string {
		// Let the last commands reach the capture.
		time.Sleep(200 * time.Millisecond)
		conn.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
}

// TestSealedAtRest: a signed OrderCloud webhook carrying an elevated
// UserToken in its body and a header, taken and delivered by a real server
// with a key, leaves no readable token in a copy of the SQLite files, in
// any Redis key, nor in the commands Redis was sent.
func TestSealedAtRest(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		url := b.url(t)
		k1 := storetest.KeyEntry(t, "k1")
		var capture func() string
		if b.name == "redis" {
			capture = monitor(t)
		}
		srv := start(t, serverOpts{store: url, api: rc.URL, extra: []string{envEncryptionKey + "=" + k1}})
		id := sendSealed(t, srv, 1)
		// The relay used the token: it is really there, sealed.
		r := rc.waitFor(t, "/v1/buyers/buyer-northwest/users/user-4471", 1)[0]
		if got := r.Header.Get("Authorization"); got != "Bearer "+sealedToken {
			t.Fatalf("the action was sent with Authorization %q, want the payload's token", got)
		}
		st := openSealedTestStore(t, url, k1)
		waitDelivery(t, st, id, store.DeliverySucceeded)
		if err := srv.stop(t); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if n := strings.Count(srv.output(), "event payloads are sealed at rest"); n != 1 {
			t.Errorf("the log says %d times that payloads are sealed, want once", n)
		}
		if strings.Contains(srv.output(), unsealedNotice) {
			t.Error("a server with a key logged that payloads are stored unencrypted")
		}
		if capture != nil {
			traffic := capture()
			if !strings.Contains(traffic, id) {
				t.Fatalf("the MONITOR capture does not show the event %s being stored:\n%.2000s", id, traffic)
			}
			if strings.Contains(traffic, sealedToken) {
				t.Error("the token crossed to Redis in clear (MONITOR)")
			}
		}
		st.Close()
		raw := rawStore(t, url)
		if !bytes.Contains(raw, []byte(id)) {
			t.Fatalf("the raw store does not hold event %s: it is not the store the server used", id)
		}
		if bytes.Contains(raw, []byte(sealedToken)) {
			t.Error("the token is readable in the raw store")
		}
		readSealed(t, url, storetest.ParseKeys(t, k1), id)
	})
}

// openSealedTestStore opens the store the server uses with the key ring
// ring, to inspect it.
func openSealedTestStore(t *testing.T, url, ring string) store.Store {
	t.Helper()
	st, _, err := openStore(context.Background(), url, storeOpening{keys: storetest.ParseKeys(t, ring), create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestUnsealedByDefault: without a key, events are stored as they were
// before keys existed, and the log says so once.
func TestUnsealedByDefault(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		url := b.url(t)
		srv := start(t, serverOpts{store: url, api: rc.URL})
		id := sendSealed(t, srv, 1)
		rc.waitFor(t, "/v1/buyers/buyer-northwest/users/user-4471", 1)
		if err := srv.stop(t); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if n := strings.Count(srv.output(), unsealedNotice); n != 1 {
			t.Errorf("the log says %d times %q, want once", n, unsealedNotice)
		}
		if !bytes.Contains(rawStore(t, url), []byte(sealedToken)) {
			t.Error("without a key the token is not stored in clear: the store changed its format")
		}
		readSealed(t, url, nil, id)
	})
}

// serveFails runs serve in process with env over the demo's environment,
// expects it to stop before it listens, and returns its exit code and
// what it printed.
func serveFails(t *testing.T, url string, env ...string) (int, string) {
	t.Helper()
	return serveFailsWith(t, url, nil, env...)
}

// serveFailsWith is serveFails with more serve flags.
func serveFailsWith(t *testing.T, url string, args []string, env ...string) (int, string) {
	t.Helper()
	vars := demoEnv()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := m.Run(ctx, append([]string{"serve", "--config", "../../testdata/demo/hookrelay.yaml", "--listen", "127.0.0.1:0", "--store", url}, args...))
	if ctx.Err() != nil {
		t.Fatalf("serve did not stop by itself: it started\n%s", errOut.String())
	}
	return code, errOut.String()
}

// demoEnv is the environment the demo config needs.
func demoEnv() map[string]string {
	return map[string]string{
		"DEMO_API_URL": "http://127.0.0.1:9", "OCW_WEBHOOK_SECRET": ocwSecret, "OC_HASH_KEY": ocHashKey,
		"WS_HOOK_TOKEN": wsToken, "CRM_TOKEN": crmToken, "DEMO_RETRY": "50ms", "GITHUB_WEBHOOK_SECRET": githubSecret,
		"STRIPE_WEBHOOK_SECRET": stripeSecret, "SHOPIFY_API_SECRET": shopifySecret, "SLACK_SIGNING_SECRET": slackSecret,
		"STANDARD_WEBHOOK_SECRET": standardSecret, "DEMO_ALLOW_NETWORKS": "127.0.0.0/8",
	}
}

// rotateKey runs `hookrelay store rotate-key` in process with the ring.
func rotateKey(t *testing.T, url, ring string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{envEncryptionKey: ring}
	m := &Main{Stdout: &out, Stderr: &errOut, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	if code := m.Run(context.Background(), append([]string{"store", "rotate-key", "--store", url}, args...)); code != 0 {
		t.Fatalf("rotate-key exited %d:\n%s%s", code, out.String(), errOut.String())
	}
	return out.String()
}

// TestKeyRotation: events written under k1 are read after a restart with
// "k2,k1"; rotate-key moves them all under k2, after which k2 alone reads
// everything. A missing or wrong key stops startup with a clear message
// and loses nothing: the right key reads everything afterwards.
func TestKeyRotation(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		url := b.url(t)
		k1, k2 := storetest.KeyEntry(t, "k1"), storetest.KeyEntry(t, "k2")
		run := func(ring string, n int) string {
			t.Helper()
			srv := start(t, serverOpts{store: url, api: rc.URL, extra: []string{envEncryptionKey + "=" + ring}})
			id := sendSealed(t, srv, n)
			if err := srv.stop(t); err != nil {
				t.Fatalf("serve: %v", err)
			}
			return id
		}
		// One event before any key, one under k1.
		clear := run("", 0)
		first := run(k1, 1)
		readSealed(t, url, storetest.ParseKeys(t, k1), clear, first)

		second := run(k2+","+k1, 2)
		readSealed(t, url, storetest.ParseKeys(t, k2+","+k1), clear, first, second)

		out := rotateKey(t, url, k2+","+k1, "--batch", "1")
		if !strings.Contains(out, "done: 3 events examined, 2 sealed anew under k2, 1 already were") {
			t.Fatalf("rotate-key printed:\n%s", out)
		}
		if !strings.Contains(out, "1 events examined") || !strings.Contains(out, "up to "+clear) {
			t.Errorf("rotate-key reported no progress per batch:\n%s", out)
		}
		if out := rotateKey(t, url, k2); !strings.Contains(out, "done: 3 events examined, 0 sealed anew") {
			t.Fatalf("a second rotate-key printed:\n%s", out)
		}
		srv := start(t, serverOpts{store: url, api: rc.URL, extra: []string{envEncryptionKey + "=" + k2}})
		third := sendSealed(t, srv, 3)
		if err := srv.stop(t); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if out := srv.output(); strings.Contains(out, "the oldest event") {
			t.Errorf("after rotate-key, serve with k2 alone warned about the oldest event:\n%s", out)
		}
		readSealed(t, url, storetest.ParseKeys(t, k2), clear, first, second, third)
		if bytes.Contains(rawStore(t, url), []byte(sealedToken)) {
			t.Error("after rotate-key the token of the event stored in clear is still readable in the raw store")
		}

		// Wrong keys: serve stops at start, saying why.
		before := storedEvents(t, url)
		for _, c := range []struct {
			name, ring string
			want       []string
		}{
			{"no key", "", []string{"event " + third + " is sealed with key k2, and no key is set: set " + envEncryptionKey}},
			{"another key", storetest.KeyEntry(t, "k3"), []string{"event " + third + " is sealed with key k2, which " + envEncryptionKey + " does not hold (it holds k3)"}},
			{"wrong material", storetest.KeyEntry(t, "k2"), []string{"event " + third + " is sealed with key k2, but it does not open", "is not the one it was sealed with"}},
			{"malformed", "k2:not-a-key", []string{envEncryptionKey + ": entry 1 (k2): the key is"}},
		} {
			code, out := serveFails(t, url, envEncryptionKey+"="+c.ring)
			if code == 0 {
				t.Fatalf("%s: serve exited 0", c.name)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: serve printed %q, want it to say %q", c.name, out, w)
				}
			}
			if strings.Contains(out, strings.SplitN(k2, ":", 2)[1]) {
				t.Errorf("%s: serve printed the key", c.name)
			}
		}
		if diff := cmp.Diff(before, storedEvents(t, url)); diff != "" {
			t.Errorf("the refused starts changed the stored events (-before +after):\n%s", diff)
		}
		readSealed(t, url, storetest.ParseKeys(t, k2), clear, first, second, third)
		srv = start(t, serverOpts{store: url, api: rc.URL, extra: []string{envEncryptionKey + "=" + k2}})
		if err := srv.stop(t); err != nil {
			t.Fatalf("serve with the right key: %v", err)
		}
	})
}

// TestSealedUnreadable: a process whose key ring lacks the key of an older
// event (its newest is readable, so it starts) delivers the others: the
// older event's delivery fails without a request, counted as unreadable,
// and is dead after its schedule; the event is listed by the API and the
// CLI with why its payload is not shown, and reading it says which key it
// needs instead of "store unavailable".
func TestSealedUnreadable(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		rc := newReceiver(t)
		url := b.url(t)
		k1, k2 := storetest.KeyEntry(t, "k1"), storetest.KeyEntry(t, "k2")
		// Stored by processes that deliver nothing (--workers 0): the
		// first under k1, the second under k2 with k1 still in the ring.
		srv := start(t, serverOpts{store: url, api: rc.URL, args: []string{"--workers", "0"}, extra: []string{envEncryptionKey + "=" + k1}})
		old := sendSealed(t, srv, 1)
		if err := srv.stop(t); err != nil {
			t.Fatal(err)
		}
		srv = start(t, serverOpts{store: url, api: rc.URL, args: []string{"--workers", "0"}, extra: []string{envEncryptionKey + "=" + k2 + "," + k1}})
		newer := sendSealed(t, srv, 2)
		if err := srv.stop(t); err != nil {
			t.Fatal(err)
		}

		// k2 alone: the newest event opens, so serve starts, and warns
		// that the oldest does not.
		srv = start(t, serverOpts{store: url, api: rc.URL, extra: []string{envEncryptionKey + "=" + k2}})
		srv.waitLog(t, "level=WARN msg=\"the oldest event, "+old+", is sealed with key k1, which "+envEncryptionKey+" does not hold (it holds k2)", 1)
		st := openSealedTestStore(t, url, k2+","+k1)
		waitDelivery(t, st, newer, store.DeliverySucceeded)
		ds := waitDeliveries(t, st, old, "dead", func(ds []store.Delivery) bool {
			return len(ds) > 0 && ds[0].Status == store.DeliveryDead
		})
		as, err := st.Attempts(context.Background(), ds[0].ID)
		if err != nil || len(as) == 0 {
			t.Fatalf("attempts of %s: %v, %v", ds[0].ID, as, err)
		}
		for _, a := range as {
			if !strings.Contains(a.Error, "nothing was sent") || !strings.Contains(a.Error, "sealed with key k1") || a.StatusCode != 0 {
				t.Errorf("attempt %d: %+v; want the reason naming k1, and no request", a.N, a)
			}
		}
		if got := rc.on("/v1/buyers/buyer-northwest/users/user-4471"); len(got) != 1 {
			t.Errorf("the receiver got %d requests, want the readable event's one", len(got))
		}
		fams, _ := scrape(t, srv.addr)
		if v := metricValue(fams, "hookrelay_delivery_attempts_total", "result", "unreadable"); v < 1 {
			t.Errorf(`hookrelay_delivery_attempts_total{result="unreadable"} = %v, want at least 1`, v)
		}

		key := createKey(t, url, "reader", "read")
		status, page := srv.api(t, key, http.MethodGet, "/events", nil)
		data, _ := page["data"].([]any)
		if status != http.StatusOK || len(data) != 2 {
			t.Fatalf("GET /events = %d with %d events, want 200 with 2: %v", status, len(data), page)
		}
		for _, item := range data {
			e, _ := item.(map[string]any)
			msg, _ := e["error"].(string)
			switch e["id"] {
			case old:
				if !strings.Contains(msg, "sealed with key k1") || e["hook"] != "ordercloud" {
					t.Errorf("listed unreadable event: %v; want its hook and an error naming k1", e)
				}
			case newer:
				if msg != "" {
					t.Errorf("listed readable event with error %q", msg)
				}
			default:
				t.Errorf("listed %v", e["id"])
			}
		}
		status, got := srv.api(t, key, http.MethodGet, "/events/"+old, nil)
		if msg, _ := got["error"].(string); status != http.StatusInternalServerError || !strings.Contains(msg, "sealed with key k1") {
			t.Errorf("GET the unreadable event = %d %v, want 500 naming k1", status, got)
		}
		out := cli(t, []string{"HOOKRELAY_API_KEY=" + key}, "events", "list", "--server", "http://"+srv.addr)
		if !strings.Contains(out, "! "+old+": ") || !strings.Contains(out, newer) {
			t.Errorf("events list printed:\n%s\nwant both events and a note on %s", out, old)
		}
		if bytes.Contains([]byte(out+fmt.Sprint(page)), []byte(sealedToken)) {
			t.Error("the token was shown")
		}
	})
}
