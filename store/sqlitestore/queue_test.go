package sqlitestore

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// TestQueueMigrationKeepsDeliveries upgrades a file written before per-action
// queues, holding deliveries in every state, one of them leased: nothing is
// lost, each is where it was in its action's queue, and the worker holding
// the lease can still finish it.
func TestQueueMigrationKeepsDeliveries(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	db, conn := openAtVersion(t, path, 2)
	evt := store.NewID("evt", base)
	if _, err := conn.ExecContext(ctx, `INSERT INTO events (`+eventColumnsV1+`)
		VALUES (?, 'orders', ?, '', '{}', '{}', x'7b7d', 'accepted', '["r"]')`, evt, base.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	type row struct {
		action, status string
		next, leased   time.Time
		token          string
		due            any // unix ms, or nil once final
	}
	ms0 := func(t time.Time) int64 { return t.UnixMilli() }
	rows := map[string]row{
		"due":       {"crm", "pending", base.Add(-time.Minute), time.Time{}, "", ms0(base.Add(-time.Minute))},
		"scheduled": {"crm", "retrying", base.Add(time.Hour), time.Time{}, "", ms0(base.Add(time.Hour))},
		"held":      {"erp", "pending", base, base.Add(5 * time.Minute), "old-token", ms0(base.Add(5 * time.Minute))},
		"expired":   {"erp", "retrying", base, base.Add(-30 * time.Second), "stale", ms0(base.Add(-30 * time.Second))},
		"succeeded": {"crm", "succeeded", time.Time{}, time.Time{}, "", nil},
		"dead":      {"erp", "dead", time.Time{}, time.Time{}, "", nil},
	}
	ids := map[string]string{}
	for name, r := range rows {
		ids[name] = "dlv_" + name
		if _, err := conn.ExecContext(ctx, `INSERT INTO deliveries (`+deliveryColumnsV1+`, lease_token, due_at)
			VALUES (?, ?, 'orders', 'r', ?, ?, 1, ?, ?, '', ?, ?, ?, ?)`,
			ids[name], evt, r.action, r.status, millis(r.next), millis(r.leased), ms0(base), ms0(base), r.token, r.due); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(conn.Close(), db.Close()); err != nil {
		t.Fatal(err)
	}

	s := mustOpen(t, path)
	defer mustClose(t, s)
	var version int
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != len(ms) {
		t.Fatalf("user_version = %d, %v; want %d", version, err, len(ms))
	}
	var schema []string
	srows, err := s.rdb.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE name IN ('deliveries_due_at', 'deliveries_action_due', 'action_states') ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for srows.Next() {
		var name string
		if err := srows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		schema = append(schema, name)
	}
	srows.Close()
	if diff := cmp.Diff([]string{"action_states", "deliveries_action_due"}, schema); diff != "" {
		t.Errorf("schema after the upgrade (-want +got):\n%s", diff)
	}

	for name, r := range rows {
		d, err := s.Delivery(ctx, ids[name])
		if err != nil || string(d.Status) != r.status || d.Action != r.action {
			t.Errorf("delivery %s after the upgrade = %+v, %v", name, d, err)
		}
	}
	if st, err := s.ActionStates(ctx); err != nil || len(st) != 0 {
		t.Errorf("ActionStates after the upgrade = %+v, %v; want none", st, err)
	}
	stats, err := s.QueueStats(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QueueStats{
		{Action: "crm", Due: 1, Scheduled: 1, OldestDue: base.Add(-time.Minute)},
		{Action: "erp", Due: 1, InFlight: 1, OldestDue: base.Add(-30 * time.Second)},
	}
	if diff := cmp.Diff(want, stats, cmpTimes); diff != "" {
		t.Errorf("QueueStats after the upgrade (-want +got):\n%s", diff)
	}

	// The lease taken before the upgrade still holds.
	held := store.Lease{Delivery: store.Delivery{ID: ids["held"]}, Token: "old-token"}
	if err := finishOne(t, s, held, store.Attempt{N: 2, StartedAt: base}, store.Outcome{Status: store.DeliverySucceeded}); err != nil {
		t.Errorf("Finish with a lease from before the upgrade: %v", err)
	}
	b := mustLease(t, s, base, 10, time.Minute, "crm", "erp")
	var leased []string
	for _, l := range b.Leases {
		leased = append(leased, l.Delivery.ID)
	}
	if diff := cmp.Diff([]string{ids["due"], ids["expired"]}, leased); diff != "" {
		t.Errorf("leased after the upgrade (-want +got):\n%s", diff)
	}
	// What was just leased is due again when its lease ends.
	if want := base.Add(time.Minute); !b.NextDue.Equal(want) {
		t.Errorf("NextDue = %v, want %v", b.NextDue, want)
	}
}

// TestQueueBatchesCommitOnce: Lease, Renew, Release and Finish each hand the
// writer one request, whatever the number of items, so that a batch costs
// one commit; items that fail do not undo the others.
func TestQueueBatchesCommitOnce(t *testing.T) {
	var (
		mu      sync.Mutex
		commits []int
	)
	s, err := open(t.Context(), filepath.Join(t.TempDir(), "hookrelay.db"), func(s *Store) {
		s.onCommit = func(n int) {
			mu.Lock()
			commits = append(commits, n)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	ctx := t.Context()
	seen := func(t *testing.T, op string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff([]int{1}, commits); diff != "" {
			t.Errorf("%s: requests per commit (-want +got):\n%s", op, diff)
		}
		commits = nil
	}

	const events = 10
	for i := range events {
		mustAccept(t, s, testEvent("orders", "", i, base, "crm", "erp"))
	}
	mu.Lock()
	commits = nil
	mu.Unlock()

	ls := mustLease(t, s, base, 100, time.Minute, "crm", "erp").Leases
	if len(ls) != 2*events {
		t.Fatalf("leased %d, want %d", len(ls), 2*events)
	}
	seen(t, "Lease")

	ends, err := s.Renew(ctx, base.Add(30*time.Second), time.Minute, ls)
	if err != nil {
		t.Fatal(err)
	}
	for i, end := range ends {
		if want := base.Add(90 * time.Second); !end.Equal(want) {
			t.Errorf("Renew end %d = %v, want %v", i, end, want)
		}
	}
	seen(t, "Renew")

	released := ls[:2]
	if err := s.Release(ctx, base.Add(time.Minute), released); err != nil {
		t.Fatal(err)
	}
	seen(t, "Release")

	ok := store.Outcome{Status: store.DeliverySucceeded}
	var fs []store.Finish
	for i, l := range ls {
		o := ok
		if i%3 == 0 {
			o = store.Outcome{Status: store.DeliveryRetrying, NextAttemptAt: base.Add(time.Hour), Error: "HTTP 503"}
		}
		fs = append(fs, store.Finish{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: base.Add(time.Minute)}, Outcome: o})
	}
	unknown := ls[2]
	unknown.Delivery.ID = "dlv_unknown"
	fs = append(fs, store.Finish{Lease: unknown, Attempt: store.Attempt{N: 1, StartedAt: base}, Outcome: ok})
	errs, err := s.Finish(ctx, fs)
	if err != nil {
		t.Fatal(err)
	}
	seen(t, "Finish")
	for i, err := range errs {
		var want error
		switch {
		case i == len(fs)-1:
			want = store.ErrNotFound
		case i < len(released) && fs[i].Outcome.Status != store.DeliverySucceeded:
			want = store.ErrLeaseLost // released; only a success is applied all the same
		}
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Finish item %d: error = %v, want %v", i, err, want)
		}
	}
	for i, l := range ls {
		as, err := s.Attempts(ctx, l.Delivery.ID)
		if err != nil || len(as) != 1 {
			t.Errorf("attempts of item %d = %v, %v; want one", i, as, err)
		}
	}

	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	seen(t, "Ping")
}

// queryPlan returns the EXPLAIN QUERY PLAN details of query, joined.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

// TestQueueUsesActionIndex: every statement that reads a queue is a range of
// the action index, never a scan of the table or a sort, and the statistics
// read nothing but the index, so they stay cheap with a long backlog.
func TestQueueUsesActionIndex(t *testing.T) {
	s := openTemp(t)
	now := base.UnixMilli()
	tests := []struct {
		name     string
		query    string
		args     []any
		covering bool
		counts   string // an index the statement's count of live leases reads, covering too
	}{
		{"lease pick", leasePick, []any{"crm", now, true}, true, "deliveries_action_held"},
		{"lease update", leaseUpdate, []any{"p", now, now, "crm", now, "dlv_x"}, false, ""},
		{"queued actions", queuedActions, nil, true, ""},
		{"due stats", dueStats, []any{"crm", now}, true, ""},
		{"later stats", laterStats, []any{now, "crm", now}, true, ""},
	}
	for _, tt := range tests {
		plan := queryPlan(t, s, tt.query, tt.args...)
		if !strings.Contains(plan, "deliveries_action_due") || strings.Contains(plan, "TEMP B-TREE") ||
			strings.Contains(plan, "SCAN deliveries") {
			t.Errorf("%s: plan %q, want a range of deliveries_action_due without sorting", tt.name, plan)
		}
		if tt.covering {
			for _, step := range strings.Split(plan, "; ") {
				if tt.counts != "" && strings.Contains(step, "COVERING INDEX "+tt.counts) {
					continue
				}
				if strings.Contains(step, "deliveries") && !strings.Contains(step, "COVERING INDEX deliveries_action_due") {
					t.Errorf("%s: step %q reads the table, want the index alone", tt.name, step)
				}
			}
		}
	}
}

// TestLeaseOrderAndTokens: within an action the earliest due deliveries are
// leased first, ties broken by id, and each lease has a token of its own.
func TestLeaseOrderAndTokens(t *testing.T) {
	s := openTemp(t)
	a := testEvent("orders", "k", 1, base, "crm", "crm", "crm", "crm", "crm")
	dues := []time.Duration{3 * time.Second, time.Second, 2 * time.Second, time.Second, time.Hour}
	for i := range a.Deliveries {
		a.Deliveries[i].NextAttemptAt = base.Add(dues[i])
	}
	mustAccept(t, s, a)
	b := mustLease(t, s, base.Add(time.Minute), 3, time.Minute, "crm")
	var got []string
	tokens := map[string]bool{}
	for _, l := range b.Leases {
		got = append(got, l.Delivery.ID)
		if l.Token == "" || tokens[l.Token] {
			t.Errorf("lease of %s has token %q, want a new one", l.Delivery.ID, l.Token)
		}
		tokens[l.Token] = true
		if !l.Until.Equal(base.Add(2*time.Minute)) || !l.Delivery.LeasedUntil.Equal(l.Until) {
			t.Errorf("lease of %s until %v (delivery %v), want %v", l.Delivery.ID, l.Until, l.Delivery.LeasedUntil, base.Add(2*time.Minute))
		}
		if l.Event.ID != a.Event.ID || string(l.Event.Body) != string(a.Event.Body) {
			t.Errorf("lease of %s carries event %+v", l.Delivery.ID, l.Event)
		}
	}
	want := []string{a.Deliveries[1].ID, a.Deliveries[3].ID, a.Deliveries[2].ID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lease order (-want +got):\n%s", diff)
	}
	// The one left due, then the lease ends.
	if !b.NextDue.Equal(base.Add(3 * time.Second)) {
		t.Errorf("NextDue = %v, want %v", b.NextDue, base.Add(3*time.Second))
	}
	// Leased again after expiry, a delivery gets a different token.
	again := mustLease(t, s, base.Add(2*time.Minute), 10, time.Minute, "crm").Leases
	if len(again) != 4 {
		t.Fatalf("leased %d after the leases ended, want 4", len(again))
	}
	for _, l := range again {
		if tokens[l.Token] {
			t.Errorf("lease of %s reuses token %q", l.Delivery.ID, l.Token)
		}
	}
	var order []string
	for _, l := range again {
		order = append(order, l.Delivery.ID)
	}
	// The one due at base+3s, then those whose leases ended at base+2m.
	want = []string{a.Deliveries[0].ID, a.Deliveries[1].ID, a.Deliveries[2].ID, a.Deliveries[3].ID}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("second lease order (-want +got):\n%s", diff)
	}
}

// TestLaneMigrationKeepsOrder upgrades a file whose lanes were ordered by
// creation and id: its waiting deliveries keep that order, and one
// accepted after the upgrade, in the same millisecond as the last of them,
// goes after them.
func TestLaneMigrationKeepsOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	evt := store.NewID("evt", base)
	lane := func(id string, created time.Time, due any) stmt {
		return stmt{`INSERT INTO deliveries (` + deliveryColumnsV1 + `, lease_token, due_at, lane)
			VALUES (?, ?, 'orders', 'r', 'crm', 'pending', 0, ?, 0, '', ?, ?, '', ?, 'order-1')`,
			[]any{id, evt, base.UnixMilli(), created.UnixMilli(), created.UnixMilli(), due}}
	}
	at := base.Add(time.Millisecond)
	// Created in one millisecond, dlv_b before dlv_c by id.
	fileAtVersion(t, path, 12,
		stmt{`INSERT INTO events (` + eventColumnsV1 + `) VALUES (?, 'orders', ?, '', '{}', '{}', x'7b7d', 'accepted', '["r"]')`, []any{evt, base.UnixMilli()}},
		lane("dlv_c", at, nil),
		lane("dlv_a", base, base.UnixMilli()),
		lane("dlv_b", at, nil),
	)
	s := mustOpen(t, path)
	defer mustClose(t, s)

	// After the upgrade, in dlv_b and dlv_c's millisecond: an id that
	// sorts before theirs.
	a := testEvent("orders", "", 1, at, "crm")
	a.Deliveries[0].ID, a.Deliveries[0].Lane = "dlv_0", "order-1"
	mustAccept(t, s, a)

	now := base.Add(time.Second)
	var got []string
	for range 4 {
		b, err := s.Lease(t.Context(), store.LeaseRequest{Now: now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 10}}})
		if err != nil || len(b.Leases) != 1 {
			t.Fatalf("Lease = %+v, %v; want one delivery of the lane", b.Leases, err)
		}
		l := b.Leases[0]
		got = append(got, l.Delivery.ID)
		errs, err := s.Finish(t.Context(), []store.Finish{{Lease: l, Attempt: store.Attempt{N: 1, StartedAt: now}, Outcome: store.Outcome{Status: store.DeliverySucceeded}}})
		if err := errors.Join(append(errs, err)...); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"dlv_a", "dlv_b", "dlv_c", "dlv_0"}, got); diff != "" {
		t.Errorf("lane order after the upgrade (-want +got):\n%s", diff)
	}
}
