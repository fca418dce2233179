package sqlitestore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// crashEnv selects the crashing child's mode of the test binary and names
// the database file it writes.
const crashEnv = "HOOKRELAY_SQLITESTORE_CRASH_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		if err := runCrashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCrashChild accepts events from several goroutines, each with two
// deliveries due at base. After each Accept the goroutine, playing a worker
// that will die holding its lease, leases one due delivery at childNow for
// childTTL, then prints "accepted <event id>". It runs until killed, or until
// its stdin closes (the parent test is gone).
func runCrashChild(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var (
		out  sync.Mutex
		wg   sync.WaitGroup
		next int
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				out.Lock()
				next++
				n := next
				out.Unlock()
				a := testEvent("orders", fmt.Sprintf("key-%d", n), n, base, "crm", "erp")
				if _, err := s.Accept(ctx, a); err != nil {
					errs <- err
					return
				}
				r := store.LeaseRequest{Now: childNow, TTL: childTTL, Actions: []store.ActionQuota{{Action: "crm", N: 1}}}
				if b, err := s.Lease(ctx, r); err != nil || len(b.Leases) != 1 {
					errs <- fmt.Errorf("lease: %d leases, %v", len(b.Leases), err)
					return
				}
				out.Lock()
				// One write per line, and os.Stdout is unbuffered: a line
				// that was printed reached the pipe before any kill.
				fmt.Fprintf(os.Stdout, "accepted %s\n", a.Event.ID)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return s.Close()
}

// The crashing child's clock and lease time.
var (
	childNow = base.Add(time.Minute)
	childTTL = 10 * time.Minute
)

// TestRestartAfterKill runs a child process that accepts events, kills it
// with SIGKILL in the middle of its work and reopens the file: every event
// whose Accept returned is there, and all its deliveries are leasable once
// the dead worker's leases have expired.
func TestRestartAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const acceptedBeforeKill = 300
	path := filepath.Join(t.TempDir(), "hookrelay.db")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var ids []string
	killed := false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		id, ok := strings.CutPrefix(lines.Text(), "accepted ")
		if !ok {
			t.Errorf("unexpected child output %q", lines.Text())
			continue
		}
		ids = append(ids, id)
		if len(ids) == acceptedBeforeKill && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d accepts: %v\n%s", len(ids), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, stderr.String())
	}

	s := mustOpen(t, path)
	defer mustClose(t, s)
	ctx := t.Context()
	want := map[string]bool{} // every delivery of every acknowledged event
	for _, id := range ids {
		ev, err := s.Event(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged event %s: %v", id, err)
		}
		if ev.Status != store.EventAccepted {
			t.Errorf("event %s status %q", id, ev.Status)
		}
		ds, err := s.Deliveries(ctx, id)
		if err != nil {
			t.Fatalf("Deliveries(%s): %v", id, err)
		}
		if len(ds) != 2 {
			t.Fatalf("event %s has %d deliveries, want 2", id, len(ds))
		}
		for _, d := range ds {
			want[d.ID] = true
		}
	}
	// At the child's clock, only what its dead worker did not hold is due;
	// once those leases have ended, the rest is. Deliveries of events
	// committed but not yet printed when the child died may come too.
	// The free ones are leased long enough to stay out of the second Lease.
	free := mustLease(t, s, childNow, 1_000_000, 24*time.Hour, "crm", "erp").Leases
	held := mustLease(t, s, childNow.Add(childTTL), 1_000_000, time.Minute, "crm", "erp").Leases
	// Each printed event followed a lease of one delivery that nothing else
	// could take before its lease ended.
	if len(held) < len(ids) {
		t.Errorf("%d deliveries were leased by the killed child, want at least %d", len(held), len(ids))
	}
	for _, l := range append(free, held...) {
		delete(want, l.Delivery.ID)
	}
	if len(want) != 0 {
		t.Errorf("%d deliveries of acknowledged events are not leasable after restart", len(want))
	}
	t.Logf("%d events acknowledged before the kill; after it %d deliveries free and %d from expired leases", len(ids), len(free), len(held))
}
