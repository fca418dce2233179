package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

// clusterStore names a store on the test Redis Cluster under a prefix of the
// test's own.
func clusterStore(t *testing.T) (url, prefix string) {
	u := redistest.ClusterURL(t)
	prefix = redistest.ClusterPrefix(t)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "prefix=" + prefix, prefix
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

	n, err := redistest.ClusterClient(t).Exists(t.Context(), prefix+":{p}:evt:"+id).Result()
	if err != nil || n != 1 {
		t.Errorf("event key on the cluster: exists = %d, %v", n, err)
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
