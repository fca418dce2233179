package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
)

var _ Store = (*sqlitestore.Store)(nil)

// actionsConfig has one action with delivery settings and one with the
// defaults.
const actionsConfig = `
hooks:
  shop:
    verify: {scheme: none}
    token: 0123456789abcdef
actions:
  crm:
    url: https://crm.example.com/contacts
    concurrency: 4
    rate: 50/s
  erp:
    url: https://erp.example.com/orders
`

// actionsAPI is the admin API on a fresh SQLite file, with a clock the test
// moves and the log kept.
type actionsAPI struct {
	t           *testing.T
	st          *sqlitestore.Store
	h           http.Handler
	read, write string // API key secrets

	mu  sync.Mutex
	now time.Time
	log bytes.Buffer
}

func newActionsAPI(t *testing.T, wrap func(*sqlitestore.Store) Store) *actionsAPI {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hookrelay.yaml")
	if err := os.WriteFile(path, []byte(actionsConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(t.Context(), filepath.Join(dir, "hookrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &actionsAPI{t: t, st: st, now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	a.read = a.key("dashboard", ScopeRead)
	a.write = a.key("ops", ScopeRead, ScopeWrite)
	var s Store = st
	if wrap != nil {
		s = wrap(st)
	}
	a.h = New(Options{
		Store:  s,
		Config: func() *config.Config { return cfg },
		Now:    a.clock,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{mu: &a.mu, w: &a.log}, nil)),
	}).Handler()
	return a
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (a *actionsAPI) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *actionsAPI) advance(d time.Duration) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = a.now.Add(d)
	return a.now
}

func (a *actionsAPI) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

func (a *actionsAPI) key(name string, scopes ...string) string {
	a.t.Helper()
	k, secret, err := NewKey(name, scopes, a.now)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.st.CreateKey(a.t.Context(), k); err != nil {
		a.t.Fatal(err)
	}
	return secret
}

// do sends a request and returns the status and the raw answer.
func (a *actionsAPI) do(key, method, path string) (int, []byte) {
	a.t.Helper()
	req := httptest.NewRequest(method, "/api/v1"+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

func (a *actionsAPI) list() []ActionView {
	a.t.Helper()
	status, raw := a.do(a.read, http.MethodGet, "/actions")
	if status != http.StatusOK {
		a.t.Fatalf("GET /actions = %d %s", status, raw)
	}
	var out struct{ Data []ActionView }
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("GET /actions: %v in %s", err, raw)
	}
	return out.Data
}

// setPaused pauses or resumes name and returns the view it answered.
func (a *actionsAPI) setPaused(name string, paused bool) ActionView {
	a.t.Helper()
	verb := "resume"
	if paused {
		verb = "pause"
	}
	status, raw := a.do(a.write, http.MethodPost, "/actions/"+name+"/"+verb)
	if status != http.StatusOK {
		a.t.Fatalf("POST /actions/%s/%s = %d %s", name, verb, status, raw)
	}
	var v ActionView
	if err := json.Unmarshal(raw, &v); err != nil {
		a.t.Fatal(err)
	}
	return v
}

func (a *actionsAPI) state(name string) store.ActionState {
	a.t.Helper()
	sts, err := a.st.ActionStates(a.t.Context())
	if err != nil {
		a.t.Fatal(err)
	}
	for _, s := range sts {
		if s.Action == name {
			return s
		}
	}
	return store.ActionState{}
}

// accept stores one event of hook shop with a delivery of action due at
// each of dues.
func (a *actionsAPI) accept(key, action string, dues ...time.Time) {
	a.t.Helper()
	at := a.now.Add(-time.Hour)
	e := store.Event{
		ID: store.NewID("evt", at), Hook: "shop", ReceivedAt: at, IdempotencyKey: key,
		Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{}`),
		MatchedRules: []string{"rule"},
	}
	var ds []store.Delivery
	for _, due := range dues {
		ds = append(ds, store.Delivery{
			ID: store.NewID("dlv", at), EventID: e.ID, Hook: "shop", Rule: "rule", Action: action,
			Status: store.DeliveryPending, NextAttemptAt: due, CreatedAt: at, UpdatedAt: at,
		})
	}
	if _, err := a.st.Accept(a.t.Context(), store.Accept{Event: e, Deliveries: ds, KeyTTL: time.Hour}); err != nil {
		a.t.Fatal(err)
	}
}

func (a *actionsAPI) putState(s store.ActionState) store.ActionState {
	a.t.Helper()
	s.Version = a.state(s.Action).Version
	got, err := a.st.PutActionState(a.t.Context(), s)
	if err != nil {
		a.t.Fatal(err)
	}
	return got
}

func ptr[T any](v T) *T { return &v }

func TestListActions(t *testing.T) {
	a := newActionsAPI(t, nil)
	now := a.now
	ctx := t.Context()
	// crm: one in flight, two due, one scheduled; gone: an action the
	// config no longer has, with one due delivery.
	a.accept("k1", "crm", now.Add(-90*time.Second), now.Add(-time.Minute), now.Add(-30*time.Second), now.Add(time.Hour))
	a.accept("k2", "gone", now.Add(-10*time.Second))
	b, err := a.st.Lease(ctx, store.LeaseRequest{Now: now, TTL: time.Hour, Actions: []store.ActionQuota{{Action: "crm", N: 1}}})
	if err != nil || len(b.Leases) != 1 {
		t.Fatalf("Lease = %+v, %v", b, err)
	}
	// erp: its breaker is open; retired: paused, then dropped from the config.
	a.putState(store.ActionState{Action: "erp", Breaker: store.BreakerOpen, Failures: 10, Opens: 2,
		BlockedUntil: now.Add(30 * time.Second), ChangedAt: now.Add(-5 * time.Second), LastError: "status 503"})
	a.putState(store.ActionState{Action: "retired", Paused: true, ChangedAt: now.Add(-time.Hour)})

	want := []ActionView{
		{Name: "crm", InConfig: true, Concurrency: ptr(4), Rate: ptr("50/s"), Breaker: BreakerView{State: "closed"},
			InFlight: 1, Due: 2, Scheduled: 1, OldestDueAt: ptr(now.Add(-time.Minute)), OldestDueAgeSeconds: 60},
		{Name: "erp", InConfig: true, Concurrency: ptr(10), ChangedAt: ptr(now.Add(-5 * time.Second)),
			Breaker: BreakerView{State: "open", ConsecutiveFailures: 10, Opens: 2, BlockedUntil: ptr(now.Add(30 * time.Second)), LastError: "status 503"}},
		{Name: "gone", Breaker: BreakerView{State: "closed"}, Due: 1, OldestDueAt: ptr(now.Add(-10 * time.Second)), OldestDueAgeSeconds: 10},
		{Name: "retired", Paused: true, ChangedAt: ptr(now.Add(-time.Hour)), Breaker: BreakerView{State: "closed"}},
	}
	if diff := cmp.Diff(want, a.list()); diff != "" {
		t.Errorf("GET /actions (-want +got):\n%s", diff)
	}

	// Absent values are null, not zero times or empty strings.
	_, raw := a.do(a.read, http.MethodGet, "/actions")
	var out struct{ Data []map[string]any }
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	erp := out.Data[1]
	for _, f := range []string{"rate", "oldest_due_at"} {
		if v, ok := erp[f]; !ok || v != nil {
			t.Errorf("erp %s = %v, want null", f, v)
		}
	}
	if erp["oldest_due_age_seconds"] != float64(0) {
		t.Errorf("erp oldest_due_age_seconds = %v, want 0", erp["oldest_due_age_seconds"])
	}
	if gone := out.Data[2]; gone["in_config"] != false || gone["concurrency"] != nil || gone["changed_at"] != nil {
		t.Errorf("gone = %v", gone)
	}
	if erp["breaker"].(map[string]any)["blocked_until"] != "2026-11-28T09:00:30Z" {
		t.Errorf("erp breaker = %v, want blocked_until in RFC 3339", erp["breaker"])
	}

	for key, want := range map[string]int{"": http.StatusUnauthorized, a.key("ci", ScopeWebhooks): http.StatusForbidden} {
		if status, raw := a.do(key, http.MethodGet, "/actions"); status != want {
			t.Errorf("GET /actions with key %.6q = %d %s, want %d", key, status, raw, want)
		}
	}
}

func TestPauseAndResume(t *testing.T) {
	a := newActionsAPI(t, nil)
	ctx := t.Context()
	paused := a.now
	a.accept("k1", "crm", paused.Add(-time.Minute))

	v := a.setPaused("crm", true)
	if !v.Paused || v.ChangedAt == nil || !v.ChangedAt.Equal(paused) || v.Due != 1 || !v.InConfig || *v.Rate != "50/s" {
		t.Errorf("pause answered %+v", v)
	}
	if st := a.state("crm"); !st.Paused || st.Version != 1 || !st.ChangedAt.Equal(paused) {
		t.Errorf("stored state after pause = %+v", st)
	}
	if got := a.list()[0]; got.Name != "crm" || !got.Paused {
		t.Errorf("GET /actions after pause: %+v", got)
	}
	if !strings.Contains(a.logs(), "action=crm paused=true") {
		t.Errorf("no log of the pause:\n%s", a.logs())
	}
	// The store, not the relay, holds the switch: nothing is leased.
	if b, err := a.st.Lease(ctx, store.LeaseRequest{Now: a.now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 5}}}); err != nil || len(b.Leases) != 0 {
		t.Errorf("Lease of a paused action = %d leases, %v", len(b.Leases), err)
	}

	// Pausing again changes nothing, not even the time of the pause.
	a.advance(time.Minute)
	if v := a.setPaused("crm", true); !v.Paused || !v.ChangedAt.Equal(paused) {
		t.Errorf("second pause answered %+v", v)
	}
	if st := a.state("crm"); st.Version != 1 {
		t.Errorf("second pause wrote the state again: %+v", st)
	}

	resumed := a.advance(time.Minute)
	if v := a.setPaused("crm", false); v.Paused || !v.ChangedAt.Equal(resumed) {
		t.Errorf("resume answered %+v", v)
	}
	if got := a.list()[0]; got.Paused {
		t.Errorf("GET /actions after resume: %+v", got)
	}
	if !strings.Contains(a.logs(), "action=crm paused=false") {
		t.Errorf("no log of the resume:\n%s", a.logs())
	}
	if b, err := a.st.Lease(ctx, store.LeaseRequest{Now: a.now, TTL: time.Minute, Actions: []store.ActionQuota{{Action: "crm", N: 5}}}); err != nil || len(b.Leases) != 1 {
		t.Errorf("Lease after resume = %d leases, %v", len(b.Leases), err)
	}
	// Resuming an action that was never paused is fine too.
	if v := a.setPaused("erp", false); v.Paused || v.ChangedAt != nil {
		t.Errorf("resume of a running action answered %+v", v)
	}

	// Only the switch moves: an open breaker stays open.
	open := a.putState(store.ActionState{Action: "erp", Breaker: store.BreakerOpen, Failures: 10, Opens: 1,
		BlockedUntil: a.now.Add(time.Minute), ChangedAt: a.now, LastError: "status 503"})
	v = a.setPaused("erp", true)
	if v.Breaker.State != "open" || v.Breaker.ConsecutiveFailures != 10 || v.Breaker.LastError != "status 503" {
		t.Errorf("pause changed the breaker: %+v", v.Breaker)
	}
	want := open
	want.Paused, want.Version = true, open.Version+1
	if diff := cmp.Diff(want, a.state("erp")); diff != "" {
		t.Errorf("stored state (-want +got):\n%s", diff)
	}

	// An action dropped from the config can still be resumed while its
	// state is stored.
	a.putState(store.ActionState{Action: "retired", Paused: true, ChangedAt: a.now})
	if v := a.setPaused("retired", false); v.Paused || v.InConfig {
		t.Errorf("resume of a retired action answered %+v", v)
	}
}

func TestPauseRefusals(t *testing.T) {
	a := newActionsAPI(t, nil)
	a.accept("k1", "gone", a.now) // queued, but neither in the config nor stored
	cases := []struct {
		key, path string
		want      int
	}{
		{"", "/actions/crm/pause", http.StatusUnauthorized},
		{a.read, "/actions/crm/pause", http.StatusForbidden},
		{a.read, "/actions/crm/resume", http.StatusForbidden},
		{a.write, "/actions/nope/pause", http.StatusNotFound},
		{a.write, "/actions/nope/resume", http.StatusNotFound},
		{a.write, "/actions/gone/pause", http.StatusNotFound},
	}
	for _, c := range cases {
		status, raw := a.do(c.key, http.MethodPost, c.path)
		var e struct{ Error string }
		if status != c.want || json.Unmarshal(raw, &e) != nil || e.Error == "" {
			t.Errorf("POST %s with key %.6q = %d %s, want %d {\"error\": …}", c.path, c.key, status, raw, c.want)
		}
	}
	if sts, err := a.st.ActionStates(t.Context()); err != nil || len(sts) != 0 {
		t.Errorf("refused requests stored %+v, %v", sts, err)
	}
}

// racingStore plays another writer: before each of the first races
// PutActionState calls, it changes the stored state itself, so that the
// call's version is stale.
type racingStore struct {
	*sqlitestore.Store
	races int
}

func (s *racingStore) PutActionState(ctx context.Context, st store.ActionState) (store.ActionState, error) {
	if s.races > 0 {
		s.races--
		cur := store.ActionState{Action: st.Action}
		sts, err := s.Store.ActionStates(ctx)
		if err != nil {
			return store.ActionState{}, err
		}
		for _, x := range sts {
			if x.Action == st.Action {
				cur = x
			}
		}
		cur.Failures++
		if _, err := s.Store.PutActionState(ctx, cur); err != nil {
			return store.ActionState{}, err
		}
	}
	return s.Store.PutActionState(ctx, st)
}

func TestPauseRetriesWhenAnotherWriterWins(t *testing.T) {
	rs := &racingStore{races: 2}
	a := newActionsAPI(t, func(s *sqlitestore.Store) Store { rs.Store = s; return rs })
	v := a.setPaused("crm", true)
	if !v.Paused || v.Breaker.ConsecutiveFailures != 2 {
		t.Errorf("pause answered %+v, want paused with both failures the other writer counted", v)
	}
	if st := a.state("crm"); !st.Paused || st.Failures != 2 || st.Version != 3 {
		t.Errorf("stored state = %+v", st)
	}

	rs.races = putStateTries
	status, raw := a.do(a.write, http.MethodPost, "/actions/crm/resume")
	if status != http.StatusConflict || !bytes.Contains(raw, []byte(`"error"`)) {
		t.Errorf("resume losing every race = %d %s, want 409", status, raw)
	}
	if st := a.state("crm"); !st.Paused {
		t.Errorf("a resume that lost every race changed the switch: %+v", st)
	}
}

func TestPauseStoreDown(t *testing.T) {
	a := newActionsAPI(t, func(s *sqlitestore.Store) Store { return brokenStore{s} })
	status, raw := a.do(a.write, http.MethodPost, "/actions/crm/pause")
	if status != http.StatusServiceUnavailable || !bytes.Contains(raw, []byte("store unavailable")) {
		t.Errorf("pause with the store down = %d %s, want 503", status, raw)
	}
	status, raw = a.do(a.read, http.MethodGet, "/actions")
	if status != http.StatusServiceUnavailable {
		t.Errorf("list with the store down = %d %s, want 503", status, raw)
	}
}

// brokenStore answers keys but fails every action state read.
type brokenStore struct{ *sqlitestore.Store }

func (brokenStore) ActionStates(context.Context) ([]store.ActionState, error) {
	return nil, errors.New("database is locked")
}
