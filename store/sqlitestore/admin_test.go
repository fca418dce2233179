package sqlitestore

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// TestAdminMigrationKeepsData upgrades a file written before the admin
// schema: its events and deliveries are listed, and keys can be added.
// eventColumnsV1 are the columns of events in the files the first
// migrations wrote, which the upgrade tests fill.
const eventColumnsV1 = `id, hook, received_at, idempotency_key, headers, query, body, status, matched_rules`

// deliveryColumnsV1 are the columns of the deliveries of the first schema
// (lease_token and due_at aside).
const deliveryColumnsV1 = `id, event_id, hook, rule, action, status, attempts, next_attempt_at, leased_until, last_error, created_at, updated_at`

func TestAdminMigrationKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	evt, dlv := store.NewID("evt", base), store.NewID("dlv", base)
	fileAtVersion(t, path, 1,
		stmt{`INSERT INTO events (` + eventColumnsV1 + `) VALUES (?, 'orders', ?, '', '{}', '{}', x'7b7d', 'accepted', '["r"]')`, []any{evt, base.UnixMilli()}},
		stmt{`INSERT INTO deliveries (` + deliveryColumnsV1 + `, lease_token, due_at)
			VALUES (?, ?, 'orders', 'r', 'crm', 'pending', 0, ?, 0, '', ?, ?, '', ?)`, []any{dlv, evt, base.UnixMilli(), base.UnixMilli(), base.UnixMilli(), base.UnixMilli()}},
	)

	s := mustOpen(t, path)
	defer mustClose(t, s)
	evs, _, err := s.ListEvents(ctx, store.EventFilter{Hook: "orders", Status: store.EventAccepted})
	if err != nil || len(evs) != 1 || evs[0].ID != evt {
		t.Errorf("ListEvents after the upgrade = %+v, %v; want %s", evs, err, evt)
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliveryPending, Action: "crm"})
	if err != nil || len(ds) != 1 || ds[0].ID != dlv {
		t.Errorf("ListDeliveries after the upgrade = %+v, %v; want %s", ds, err, dlv)
	}
	k := store.APIKey{ID: store.NewID("key", base), Name: "ops", Hash: strings.Repeat("a", 64), CreatedAt: base}
	if err := s.CreateKey(ctx, k); err != nil {
		t.Errorf("CreateKey after the upgrade: %v", err)
	}
}

// TestRevokeSeenByOtherHandle opens the file twice: a key revoked through
// one handle is revoked for the other at once, nothing is cached.
func TestRevokeSeenByOtherHandle(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	a := mustOpen(t, path)
	defer mustClose(t, a)
	b := mustOpen(t, path)
	defer mustClose(t, b)

	k := store.APIKey{ID: store.NewID("key", base), Name: "ops", Hash: strings.Repeat("b", 64), Scopes: []string{"read"}, CreatedAt: base}
	if err := a.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got, err := b.KeyByHash(ctx, k.Hash); err != nil || !got.RevokedAt.IsZero() {
		t.Fatalf("KeyByHash through the other handle = %+v, %v; want the valid key", got, err)
	}
	if err := a.RevokeKey(ctx, k.ID, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.KeyByHash(ctx, k.Hash); err != nil || !got.RevokedAt.Equal(base.Add(time.Second)) {
		t.Fatalf("KeyByHash through the other handle after a revoke = %+v, %v; want it revoked", got, err)
	}
}

// TestListUsesIndexes checks that the listing queries are served by an
// index in id order, not by sorting the table.
func TestListUsesIndexes(t *testing.T) {
	s := openTemp(t)
	cursor := store.NewID("dlv", base)
	events := func(f store.EventFilter) func() (string, []any) {
		return func() (string, []any) { return eventsQuery(f, 10) }
	}
	deliveries := func(f store.DeliveryFilter) func() (string, []any) {
		return func() (string, []any) { return deliveriesQuery(f, 10) }
	}
	tests := []struct {
		name  string
		query func() (string, []any)
		index string
	}{
		{"events", events(store.EventFilter{}), "sqlite_autoindex_events_1"},
		{"events of a hook", events(store.EventFilter{Hook: "h", Cursor: "evt" + cursor[3:]}), "events_hook_id"},
		{"ignored events", events(store.EventFilter{Status: store.EventIgnored}), "events_status_id"},
		{"events of a hook in a window", events(store.EventFilter{Hook: "h", Since: base, Until: base.Add(time.Hour)}), "events_hook_id"},
		{"dead deliveries", deliveries(store.DeliveryFilter{Status: store.DeliveryDead, Cursor: cursor}), "deliveries_open_id"},
		{"pending deliveries", deliveries(store.DeliveryFilter{Status: store.DeliveryPending}), "deliveries_open_id"},
		{"succeeded deliveries", deliveries(store.DeliveryFilter{Status: store.DeliverySucceeded}), "sqlite_autoindex_deliveries_1"},
		{"deliveries of an action", deliveries(store.DeliveryFilter{Action: "crm"}), "deliveries_action_id"},
		{"deliveries of a hook", deliveries(store.DeliveryFilter{Hook: "h"}), "deliveries_hook_id"},
		{"keys", func() (string, []any) {
			return `SELECT ` + apiKeyColumns + ` FROM api_keys ORDER BY created_at, id`, nil
		}, "api_keys_created_at"},
	}
	for _, tt := range tests {
		query, args := tt.query()
		rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, tt.index) || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%s: plan %q, want it to use %s without sorting", tt.name, got, tt.index)
		}
	}
}

// stmt is a statement and its arguments.
type stmt struct {
	sql  string
	args []any
}

// fileAtVersion writes a database file at path as an older hookrelay left
// it, with the first n migrations, runs stmts on it and closes it.
func fileAtVersion(t *testing.T, path string, n int, stmts ...stmt) {
	t.Helper()
	db, conn := openAtVersion(t, path, n)
	for _, q := range stmts {
		if _, err := conn.ExecContext(t.Context(), q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// openAtVersion creates a database file at path with the first n
// migrations only, as an older hookrelay left it, and returns its
// connection for the test to fill; the test closes both.
func openAtVersion(t *testing.T, path string, n int) (*sql.DB, *sql.Conn) {
	t.Helper()
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), conn, ms[:n]); err != nil {
		t.Fatal(err)
	}
	return db, conn
}

// TestKeyMigrationKeepsWindows upgrades a file whose idempotency keys were
// rows of their own: each key's window moves onto the event that held it,
// so an open one still answers duplicates, and an ended one does not.
func TestKeyMigrationKeepsWindows(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hookrelay.db")
	open, ended, keyless := store.NewID("evt", base), store.NewID("evt", base.Add(time.Millisecond)), store.NewID("evt", base.Add(2*time.Millisecond))
	fileAtVersion(t, path, 11,
		stmt{`INSERT INTO events (` + eventColumnsV1 + `) VALUES (?, 'orders', ?, 'open', '{}', '{}', x'7b7d', 'ignored', '[]')`, []any{open, base.UnixMilli()}},
		stmt{`INSERT INTO events (` + eventColumnsV1 + `) VALUES (?, 'orders', ?, 'ended', '{}', '{}', x'7b7d', 'ignored', '[]')`, []any{ended, base.UnixMilli() + 1}},
		stmt{`INSERT INTO events (` + eventColumnsV1 + `) VALUES (?, 'orders', ?, 'none', '{}', '{}', x'7b7d', 'ignored', '[]')`, []any{keyless, base.UnixMilli() + 2}},
		stmt{`INSERT INTO idempotency_keys (hook, key, event_id, expires_at) VALUES ('orders', 'open', ?, ?)`, []any{open, base.Add(time.Hour).UnixMilli()}},
		stmt{`INSERT INTO idempotency_keys (hook, key, event_id, expires_at) VALUES ('orders', 'ended', ?, ?)`, []any{ended, base.Add(time.Minute).UnixMilli()}},
	)

	s := mustOpen(t, path)
	defer mustClose(t, s)
	if got := keyWindow(t, s, open); got != base.Add(time.Hour).UnixMilli() {
		t.Errorf("window of the open key after the upgrade = %d, want %d", got, base.Add(time.Hour).UnixMilli())
	}
	if got := keyWindow(t, s, keyless); got != 0 {
		t.Errorf("window of an event that held no key = %d, want 0", got)
	}
	at := base.Add(30 * time.Minute)
	for _, tt := range []struct {
		key  string
		want string // the event it duplicates; "" for a new one
	}{
		{"open", open},
		{"ended", ""},
		{"none", ""},
	} {
		a := testEvent("orders", tt.key, 0, at)
		at = at.Add(time.Millisecond)
		got := mustAccept(t, s, a)
		if tt.want != "" && (!got.Duplicate || got.EventID != tt.want) {
			t.Errorf("Accept with key %q after the upgrade = %+v, want a duplicate of %s", tt.key, got, tt.want)
		}
		if tt.want == "" && got.Duplicate {
			t.Errorf("Accept with key %q after the upgrade = %+v, want a new event", tt.key, got)
		}
	}
	var tables int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'idempotency_keys'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("idempotency_keys tables after the upgrade = %d, %v; want none", tables, err)
	}
}

// TestEventsQueryEndsAtOneBound: a page deep in a window ends its walk of
// the ids at the lower of the window's end and the cursor, given to SQLite
// as one bound (with two, it walked to one and filtered by the other:
// 25 ms a page at a million events, against 1.4 ms).
func TestEventsQueryEndsAtOneBound(t *testing.T) {
	since, until := base, base.Add(time.Hour)
	end := store.IDsBefore("evt", until)
	early, late := store.IDsBefore("evt", base.Add(time.Minute)), store.IDsBefore("evt", base.Add(2*time.Hour))
	tests := []struct {
		name   string
		cursor string
		want   string
	}{
		{"no cursor", "", end},
		{"cursor inside the window", early, early},
		{"cursor after the window", late, end},
	}
	for _, tt := range tests {
		query, args := eventsQuery(store.EventFilter{Since: since, Until: until, Cursor: tt.cursor}, 50)
		if n := strings.Count(query, "id < ?"); n != 1 {
			t.Errorf("%s: %d upper bounds on the id in %q, want 1", tt.name, n, query)
			continue
		}
		var bounds []string
		for _, a := range args {
			if s, ok := a.(string); ok && strings.HasPrefix(s, "evt_") {
				bounds = append(bounds, s)
			}
		}
		// The lower bound (since) comes first, the upper one after it.
		if len(bounds) != 2 || bounds[1] != tt.want {
			t.Errorf("%s: id bounds %v, want the upper one %s", tt.name, bounds, tt.want)
		}
	}
}
