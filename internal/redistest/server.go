package redistest

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server starts a redis-server of the test's own on a free loopback port,
// with no persistence, stopped when the test ends, and returns its URL. It
// syncs a replica at once (Redis's default waits 5 s for more replicas to
// join a diskless sync). A
// test that must do what would disturb other tests (FLUSHALL, a restart)
// uses it. Without redis-server on PATH the test is skipped, unless
// CI=true: then it fails.
func Server(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH (CI=true, so this fails instead of skipping): %v", err)
		}
		t.Skipf("redis-server is not on PATH, skipping: %v", err)
	}
	// The port is found free, then given to redis-server: another program
	// may take it in between, so a start that fails is tried again.
	var last string
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		var out bytes.Buffer
		cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
			"--dir", t.TempDir()}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = c.Ping(ctx).Err()
			cancel()
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					<-done
				})
				return "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
			}
			exited := false
			select {
			case <-done:
				exited = true
			default:
			}
			if exited || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
		_ = cmd.Process.Kill()
		<-done
		last = out.String()
	}
	t.Fatalf("redis-server did not start:\n%s", last)
	return ""
}

// Replica starts a redis-server of the test's own replicating the one at
// masterURL and returns its URL once the master lists it online; it fails
// the test if that takes more than 30 s.
func Replica(t testing.TB, masterURL string) string {
	t.Helper()
	opt, err := redis.ParseURL(masterURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	u := Server(t, "--replicaof", host, port)
	master := redis.NewClient(opt)
	defer master.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := master.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "state=online") {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica of %s is not online after 30s: %v\n%s", opt.Addr, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
