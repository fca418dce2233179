package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterFailover kills (-9) the master that holds the store's partition 0
// (and about a third of its partitions) while webhooks keep arriving, on a
// Redis Cluster of the test's own with a replica per master: hookrelay
// answers 503 while a partition's slot has no master, never 2xx for an
// event it did not store, and takes events again once the replica has
// taken over, without a restart. With durability: wait every
// event answered 2xx is still there after the failover; with the default,
// the test reports how many acknowledged events the failover lost
// (replication is asynchronous), the figures the README quotes.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Redis Clusters and waits out two failovers")
	}
	for _, durability := range []string{"default", "wait"} {
		t.Run(durability, func(t *testing.T) {
			clusterURL := redistest.Cluster(t)
			prefix := "hrfailover"
			dir := copyDemo(t)
			cfg := filepath.Join(dir, "hookrelay.yaml")
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, cfg, "durability: "+durability+"\n"+string(b))
			rc := newReceiver(t)
			srv := start(t, serverOpts{store: redistest.WithPrefix(clusterURL, prefix), api: rc.URL, config: cfg})

			opt, err := redis.ParseClusterURL(strings.Replace(clusterURL, "redis+cluster://", "redis://", 1))
			if err != nil {
				t.Fatal(err)
			}
			cc := redis.NewClusterClient(opt)
			defer cc.Close()
			ctx := t.Context()
			master, err := cc.MasterForKey(ctx, prefix+":{p}:")
			if err != nil {
				t.Fatal(err)
			}

			var (
				mu       sync.Mutex
				acked    []string  // ids answered 2xx
				refused  int       // 503s
				other    []string  // anything else
				lastFail time.Time // the last 503
				tookOver time.Time // when a replica had taken over
			)
			template := payload(t, "oncloudwine-contact-updated.json")
			var doc map[string]any
			if err := json.Unmarshal(template, &doc); err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Timeout: 15 * time.Second}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var seq int64
			var seqMu sync.Mutex
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						seqMu.Lock()
						seq++
						n := seq
						seqMu.Unlock()
						d := map[string]any{}
						for k, v := range doc {
							d[k] = v
						}
						// The hook's idempotency key reads the timestamp.
						d["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano) + "-" + strconv.FormatInt(n, 10)
						body, _ := json.Marshal(d)
						req, _ := http.NewRequest(http.MethodPost, srv.url("/hooks/catch/oncloudwine"), bytes.NewReader(body))
						req.Header = ocwSign(body)
						req.Header.Set("Content-Type", "application/json")
						resp, err := client.Do(req)
						if err != nil {
							mu.Lock()
							other = append(other, err.Error())
							mu.Unlock()
							continue
						}
						var out struct {
							ID string `json:"id"`
						}
						_ = json.NewDecoder(resp.Body).Decode(&out)
						resp.Body.Close()
						mu.Lock()
						switch {
						case resp.StatusCode == http.StatusAccepted:
							acked = append(acked, out.ID)
						case resp.StatusCode == http.StatusServiceUnavailable:
							refused++
							lastFail = time.Now()
						default:
							other = append(other, resp.Status)
						}
						mu.Unlock()
						time.Sleep(2 * time.Millisecond)
					}
				})
			}
			// Intake first runs for a while on the cluster as it is.
			for start := time.Now(); ; {
				mu.Lock()
				before := len(acked)
				mu.Unlock()
				if before >= 200 {
					break
				}
				if time.Since(start) > 15*time.Second {
					t.Fatalf("%d events answered 202 in 15s before any failure:\n%s", before, srv.output())
				}
				time.Sleep(50 * time.Millisecond)
			}
			// A replica takes over only once it has synced with its master:
			// wait for that, as an operator would before a failure.
			for start := time.Now(); ; {
				info, err := master.Info(ctx, "replication").Result()
				if err == nil && strings.Contains(info, "state=online") {
					break
				}
				if time.Since(start) > 15*time.Second {
					t.Fatalf("the master's replica did not sync:\n%s", info)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Kill the master, and once its replica has taken over, start it
			// again: it comes back as the new master's replica, which
			// durability: wait needs before it answers 2xx again.
			addr := master.Options().Addr
			dirs, err := master.ConfigGet(ctx, "dir").Result()
			if err != nil {
				t.Fatal(err)
			}
			nodeDir := dirs["dir"]
			mu.Lock()
			// Only what follows the kill counts: a cluster just created
			// may refuse a first write or two while its replicas settle.
			refused, lastFail = 0, time.Time{}
			pid, err := os.ReadFile(filepath.Join(nodeDir, "redis.pid"))
			if err != nil {
				t.Fatal(err)
			}
			proc, err := os.FindProcess(atoi(t, strings.TrimSpace(string(pid))))
			if err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			mu.Unlock()
			if err := proc.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 the master %s: %v", addr, err)
			}
			go func() {
				// Restarted empty before its replica took over, the old
				// master would take its slots back without their data.
				for {
					if time.Since(killed) > 40*time.Second {
						t.Errorf("no replica took over from %s in 40s", addr)
						return
					}
					time.Sleep(200 * time.Millisecond)
					m, err := cc.MasterForKey(context.Background(), prefix+":{p}:")
					if err == nil && m.Options().Addr != addr && m.Ping(context.Background()).Err() == nil {
						mu.Lock()
						tookOver = time.Now()
						mu.Unlock()
						break
					}
					cc.ReloadState(context.Background())
				}
				_, port, _ := net.SplitHostPort(addr)
				p, _ := strconv.Atoi(port)
				out, err := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--daemonize", "yes",
					"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
					"--cluster-port", strconv.Itoa(p-10000), "--save", "", "--appendonly", "no", "--dir", nodeDir,
					"--logfile", filepath.Join(nodeDir, "redis.log"), "--pidfile", filepath.Join(nodeDir, "redis.pid")).CombinedOutput()
				if err != nil {
					t.Errorf("restart %s: %v\n%s", addr, err, out)
				}
			}()
			// Wait for the failover and a few seconds of intake without a
			// 503 after it.
			deadline := time.Now().Add(60 * time.Second)
			for {
				mu.Lock()
				ok := !tookOver.IsZero() && time.Since(tookOver) > 2*time.Second && time.Since(lastFail) > 3*time.Second
				mu.Unlock()
				if ok || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			close(stop)
			wg.Wait()

			mu.Lock()
			defer mu.Unlock()
			if refused == 0 {
				t.Errorf("no 503 while the store's slot had no master")
			}
			if tookOver.IsZero() || time.Since(lastFail) < 3*time.Second {
				logs := strings.Split(srv.output(), "\n")
				t.Fatalf("still 503s 60s after the kill (%d accepted, %d refused, other: %v); the log ends:\n%s",
					len(acked), refused, other, strings.Join(logs[max(0, len(logs)-15):], "\n"))
			}
			if len(other) > 0 {
				t.Errorf("answers other than 202 and 503: %v", other[:min(len(other), 5)])
			}
			after := openTestStore(t, redistest.WithPrefix(clusterURL, prefix))
			lost := 0
			for _, id := range acked {
				var err error
				for range 50 {
					if _, err = after.Event(context.Background(), id); err == nil || errors.Is(err, store.ErrNotFound) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if errors.Is(err, store.ErrNotFound) {
					lost++
				} else if err != nil {
					t.Fatalf("Event(%s) after the failover: %v", id, err)
				}
			}
			t.Logf("durability %s: %d events answered 202, %d answered 503 over %.1fs from the kill; %d of the 202s lost",
				durability, len(acked), refused, lastFail.Sub(killed).Seconds(), lost)
			if durability == "wait" && lost > 0 {
				t.Errorf("durability wait: %d events answered 202 are gone after the failover", lost)
			}
			if status, body := srv.request(t, http.MethodGet, "/readyz", nil, nil); status != http.StatusOK {
				t.Errorf("/readyz after the failover = %d %s", status, body)
			}
		})
	}
}
