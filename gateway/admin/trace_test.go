package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

func TestRuleTraceView(t *testing.T) {
	const secret = "s3cr3t-compare-value-91"
	red := redact.New([]string{secret}, nil)
	v := newRuleTraceView(store.RuleTrace{Rule: "r", Result: store.RuleNotMatched, Fields: []store.FieldTrace{
		{Field: "body.data.status", Value: `"CANCELLED"`, Wanted: []string{`== "ACTIVE"`, `== "PAUSED"`}},
		{Field: "body.data.tags", Value: `["a"]`, Wanted: []string{`contains "vip"`}},
		{Field: "body.kind", Absent: true, Wanted: []string{`not in ["x", "y"]`}},
		{Field: "body.UserToken", Value: `"eyJ.token.value"`, Wanted: []string{`== "` + secret + `"`}},
		{Field: `headers["x-kind"]`, Value: `"` + secret + `"`, Wanted: []string{`!= "test"`}},
		{Field: "body.n", Error: "not read: the evaluation budget was spent"},
	}}, red)
	want := `rule r (not matched): body.data.status was "CANCELLED", wanted "ACTIVE" or "PAUSED"; ` +
		`body.data.tags was ["a"], wanted containing "vip"; body.kind was absent, wanted none of ["x", "y"]; ` +
		`body.UserToken was [redacted], wanted [redacted]; headers["x-kind"] was "[redacted]", wanted not "test"; ` +
		`body.n not read: the evaluation budget was spent`
	if v.Explanation != want {
		t.Errorf("explanation:\n got %s\nwant %s", v.Explanation, want)
	}
	if strings.Contains(v.Explanation, secret) || strings.Contains(v.Explanation, "eyJ.token") {
		t.Errorf("explanation shows a secret: %s", v.Explanation)
	}
}

func TestDeliveryTraceView(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	next := at.Add(90 * time.Second)
	as := []store.Attempt{
		{N: 1, StartedAt: at, StatusCode: 500, Error: "status 500", Outcome: store.DeliveryRetrying, Reason: store.ReasonRetry, NextAttemptAt: next},
		{N: 2, StartedAt: next, StatusCode: 429, Error: "status 429, retry after 2026-11-23T09:05:00Z", Outcome: store.DeliveryRetrying,
			Reason: store.ReasonRetryAfter, NextAttemptAt: at.Add(5 * time.Minute)},
		{N: 3, StartedAt: at.Add(5 * time.Minute), Error: "dial tcp: connection refused", Outcome: store.DeliveryDead, Reason: store.ReasonLastAttempt},
	}
	d := store.Delivery{ID: "dlv_1", Rule: "r", Action: "a", Status: store.DeliveryDead, LastError: "dial tcp: connection refused (after 3 attempts)"}
	v := newDeliveryTraceView(d, as, redact.New(nil, nil))
	for i, want := range []string{
		"attempt 1 retried because of 500, next try due 2026-11-23T09:01:30.000Z",
		"attempt 2 retried because of 429 (retry after 2026-11-23T09:05:00Z), next try due 2026-11-23T09:05:00.000Z (as the receiver's Retry-After asked)",
		"attempt 3 failed for good because of dial tcp: connection refused: the last attempt of the retry schedule failed",
	} {
		if v.Attempts[i].Explanation != want {
			t.Errorf("attempt %d:\n got %s\nwant %s", i+1, v.Attempts[i].Explanation, want)
		}
	}
	if want := "the last attempt of the retry schedule failed: dial tcp: connection refused (after 3 attempts)"; v.DeadBecause != want {
		t.Errorf("dead because %q, want %q", v.DeadBecause, want)
	}

	gone := newDeliveryTraceView(store.Delivery{Status: store.DeliveryDead, LastError: "status 410"},
		[]store.Attempt{{N: 1, StatusCode: 410, Error: "status 410", Outcome: store.DeliveryDead, Reason: store.ReasonGone}}, nil)
	if want := "attempt 1 failed for good because of 410: the receiver answered 410 Gone"; gone.Attempts[0].Explanation != want {
		t.Errorf("410: %q, want %q", gone.Attempts[0].Explanation, want)
	}
}
