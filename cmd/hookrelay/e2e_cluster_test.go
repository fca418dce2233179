package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// clusterStore names a store on the test Redis Cluster under a prefix of the
// test's own.
func clusterStore(t *testing.T) (url, prefix string) {
	prefix = redistest.ClusterPrefix(t)
	return redistest.WithPrefix(redistest.ClusterURL(t), prefix), prefix
}

// TestClusterServe runs the real serve path on a Redis Cluster: a signed
// webhook is accepted, stored on the cluster and delivered to a loopback
// receiver.
func TestClusterServe(t *testing.T) {
	storeURL, prefix := clusterStore(t)
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL})

	body := payload(t, "oncloudwine-contact-updated.json")
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/oncloudwine", body, ocwSign(body))
	id, _ := out["id"].(string)
	if status != http.StatusAccepted || !strings.HasPrefix(id, "evt_") {
		t.Fatalf("POST = %d %v, want 202 with an event id", status, out)
	}
	r := rc.waitFor(t, "/v1/contacts/ctc_8a41d07b", 1)[0]
	checkRequest(t, r, http.MethodPatch, crmToken)
	waitDelivery(t, openTestStore(t, storeURL), id, store.DeliverySucceeded)

	if n := clusterKeys(t, prefix+":{*}:evt:"+id); n != 1 {
		t.Errorf("event key on the cluster: %d found, want 1", n)
	}
	if status, body := srv.request(t, http.MethodGet, "/readyz", nil, nil); status != http.StatusOK {
		t.Errorf("/readyz = %d %s, want 200", status, body)
	}
	logs := srv.output()
	if !strings.Contains(logs, "store opened") || !strings.Contains(logs, "redis+cluster://") {
		t.Errorf("no store opened line naming the cluster in the log:\n%s", logs)
	}
	// Every master of the test cluster has a replica.
	if strings.Contains(logs, "neither persists") {
		t.Errorf("warned that the cluster keeps nothing:\n%s", logs)
	}
}

// TestClusterDemo runs the demo's end-to-end test, as on each store, on a
// Redis Cluster.
func TestClusterDemo(t *testing.T) {
	storeURL, _ := clusterStore(t)
	testDemo(t, storeURL)
}

// A cluster that cannot be reached, or a seed that is no cluster, stops
// serve before it listens, saying which seeds and why, without the
// password.
func TestServeRefusesBadCluster(t *testing.T) {
	cases := []struct {
		name  string
		store func(t *testing.T) string
		want  []string
	}{
		{"unreachable seeds", func(*testing.T) string { return "redis+cluster://u:s3cret@127.0.0.1:1?addr=127.0.0.1:2" },
			[]string{"open Redis store redis+cluster://u:xxxxx@127.0.0.1:1", "Redis Cluster seeds 127.0.0.1:1, 127.0.0.1:2", "connection refused"}},
		{"bad seed", func(*testing.T) string { return "redis+cluster://:s3cret@127.0.0.1:1?addr=nohost" },
			[]string{"unable to parse addr param: nohost"}},
		{"seed without cluster mode", func(t *testing.T) string {
			opt, err := redis.ParseURL(redistest.URL(t))
			if err != nil {
				t.Fatal(err)
			}
			return "redis+cluster://" + opt.Addr
		}, []string{"Redis Cluster seeds ", "cluster support disabled"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := run(t, nil, "serve", "--config", "../../testdata/demo/hookrelay.yaml", "--listen", "127.0.0.1:0", "--store", c.store(t))
			if code == 0 || strings.Contains(errOut, "listening") {
				t.Errorf("exit %d, stderr %q; want serve to stop before listening", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q, want %q", errOut, w)
				}
			}
			if strings.Contains(errOut, "s3cret") {
				t.Errorf("stderr names the password: %q", errOut)
			}
		})
	}
}

// TestClusterTwoProcesses sends 10,000 events through two hookrelay
// processes sharing a store on the Redis Cluster: every event is delivered
// exactly once (one request per Idempotency-Key, none missing), whichever
// process took it and whichever delivered it, and the store's keys are
// spread over the cluster's three masters, each holding at least a fifth.
func TestClusterTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 10,000 events through two processes")
	}
	const events = 10000
	storeURL, prefix := clusterStore(t)
	cfg := relayConfig(t, `
  - name: all
    when: "true"
    actions: [out]
`, `
  out:
    url: ${DEMO_API_URL}/out
    body: {n: "{{ body.n }}"}
    concurrency: 32
`)
	rc := newReceiver(t)
	srvs := []*server{
		start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg}),
		start(t, serverOpts{store: storeURL, api: rc.URL, config: cfg}),
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for n := g; n < events; n += 8 {
				body := fmt.Appendf(nil, `{"n":%d}`, n)
				resp, err := client.Post(srvs[n%2].url(relayHook), "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d events were not answered 202", n, events)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(rc.on("/out")) < events && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would arrive by now
	reqs := rc.on("/out")
	keys, ns := map[string]int{}, map[float64]int{}
	for _, r := range reqs {
		keys[r.Header.Get("Idempotency-Key")]++
		ns[jsonBody(t, r.Body)["n"].(float64)]++
	}
	if len(reqs) != events || len(keys) != events || len(ns) != events {
		t.Errorf("%d requests for %d Idempotency-Keys and %d events, want %d of each, each once", len(reqs), len(keys), len(ns), events)
	}

	per := keysPerMaster(t, prefix+":*")
	t.Logf("the store's keys per master: %v", per)
	total := 0
	for _, n := range per {
		total += n
	}
	if len(per) != 3 {
		t.Fatalf("keys on %d masters, want the test cluster's 3", len(per))
	}
	for addr, n := range per {
		if n*5 < total {
			t.Errorf("master %s holds %d of the store's %d keys (%.0f%%), want at least 20%%", addr, n, total, 100*float64(n)/float64(total))
		}
	}
}

// keysPerMaster counts the keys matching pattern on each master of the
// test cluster.
func keysPerMaster(t *testing.T, pattern string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	per := map[string]int{}
	err := redistest.ClusterClient(t).ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
		n := 0
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			n++
		}
		mu.Lock()
		per[c.Options().Addr] = n
		mu.Unlock()
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return per
}

// clusterKeys counts the keys matching pattern on the test cluster.
func clusterKeys(t *testing.T, pattern string) int {
	t.Helper()
	n := 0
	for _, k := range keysPerMaster(t, pattern) {
		n += k
	}
	return n
}
