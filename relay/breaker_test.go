package relay

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b := Breaker{Failures: 3, Cooldown: time.Second, MaxCooldown: 5 * time.Second}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := store.ActionState{Action: "crm"}

	s, changed := b.Record(s, failing, now, "status 500")
	if !changed || s.Failures != 1 || !closed(s) {
		t.Fatalf("after 1 failure: %+v, %t", s, changed)
	}
	// A success in between starts the count again.
	s, _ = b.Record(s, healthy, now, "")
	if s.Failures != 0 || !closed(s) {
		t.Fatalf("after a success: %+v", s)
	}
	// A 4xx says nothing of the destination.
	if _, changed := b.Record(s, neutral, now, "status 400"); changed {
		t.Errorf("a neutral verdict changed the state")
	}
	for i := range 2 {
		s, _ = b.Record(s, failing, now, "status 500")
		if !closed(s) {
			t.Fatalf("open after %d failures, want %d", i+1, b.Failures)
		}
	}
	s, changed = b.Record(s, failing, now, "status 503")
	if !changed || s.Breaker != store.BreakerOpen || s.Opens != 1 || !s.BlockedUntil.Equal(now.Add(time.Second)) || s.LastError != "status 503" {
		t.Fatalf("after 3 failures: %+v, want open until %v", s, now.Add(time.Second))
	}
	// Failures of attempts already in flight when it opened change nothing.
	if _, changed := b.Record(s, failing, now.Add(time.Millisecond), "late"); changed {
		t.Errorf("a failure while open changed the state")
	}
}

func TestBreakerProbeFailureDoublesTheCooldownUpToTheMax(t *testing.T) {
	b := Breaker{Failures: 1, Cooldown: time.Second, MaxCooldown: 5 * time.Second}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := b.Record(store.ActionState{Action: "crm"}, failing, now, "x")
	var waits []time.Duration
	for range 5 {
		// The store moved it to half-open when it leased the probe.
		s.Breaker = store.BreakerHalfOpen
		s, _ = b.Record(s, failing, now, "x")
		if s.Breaker != store.BreakerOpen {
			t.Fatalf("a failed probe left the breaker %s, want open", s.Breaker)
		}
		waits = append(waits, s.BlockedUntil.Sub(now))
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("cool-downs after failed probes = %v, want %v", waits, want)
			break
		}
	}
	// A successful probe closes it and forgets the history.
	s.Breaker = store.BreakerHalfOpen
	s, changed := b.Record(s, healthy, now, "")
	if !changed || !closed(s) || s.Opens != 0 || s.Failures != 0 || !s.BlockedUntil.IsZero() || s.LastError != "" {
		t.Errorf("after a successful probe: %+v, want closed and reset", s)
	}
	if _, changed := b.Record(s, healthy, now, ""); changed {
		t.Errorf("a success on a closed, clean breaker changed it")
	}
}
