package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// EventTraceView is why an event did what it did: how it was verified,
// where its idempotency key came from and which duplicates were answered
// for it, what each rule made of it, and what became of every delivery it
// led to. Values read from the payload are redacted as the payload is.
type EventTraceView struct {
	// Verification is absent for an event stored without a trace.
	Verification *VerificationView `json:"verification,omitempty"`
	Idempotency  IdempotencyView   `json:"idempotency"`
	// Rules is null for an event stored without a trace.
	Rules      []RuleTraceView     `json:"rules"`
	Deliveries []DeliveryTraceView `json:"deliveries"`
}

// VerificationView is how the event's signature was verified.
type VerificationView struct {
	Scheme string `json:"scheme"`
	// Secret is the position (from 1) of the configured secret that
	// matched, never the secret itself; absent when none was checked.
	Secret int `json:"secret,omitempty"`
	// SignedAt and SkewMS (received time minus signed time) are there for
	// a scheme that signs a timestamp.
	SignedAt *time.Time `json:"signed_at,omitempty"`
	SkewMS   *int64     `json:"skew_ms,omitempty"`
}

// IdempotencyView is the event's key, where it came from, and the later
// arrivals answered as its duplicates.
type IdempotencyView struct {
	Key    string `json:"key"`
	Source string `json:"source,omitempty"` // "body hash", "expression", or the field the scheme signs
	// Error is why the key expression failed, so that the body hash was used.
	Error      string          `json:"error,omitempty"`
	Duplicates int             `json:"duplicates"`
	Arrivals   []DuplicateView `json:"duplicate_arrivals,omitempty"` // the last few, oldest first
}

// DuplicateView is one later arrival of the event.
type DuplicateView struct {
	At     time.Time `json:"at"`
	Answer string    `json:"answer"` // always "duplicate": it was answered 200 with the original's id
}

// RuleTraceView is what one rule made of the event.
type RuleTraceView struct {
	Rule   string      `json:"rule"`
	Result string      `json:"result"` // matched, not matched or error
	Error  string      `json:"error,omitempty"`
	Fields []FieldView `json:"fields,omitempty"`
	// Explanation says it in one line: rule r (not matched): body.status
	// was "CANCELLED", wanted "ACTIVE".
	Explanation string `json:"explanation"`
}

// FieldView is one field a rule's condition reads and the event's value
// there.
type FieldView struct {
	Field  string   `json:"field"`
	Value  string   `json:"value,omitempty"` // as a literal: strings quoted
	Absent bool     `json:"absent,omitempty"`
	Error  string   `json:"error,omitempty"`
	Wanted []string `json:"wanted,omitempty"` // an operator and a constant each: == "ACTIVE"
	// Explanation says it in words: body.data.status was "CANCELLED",
	// wanted "ACTIVE".
	Explanation string `json:"explanation"`
}

// DeliveryTraceView is one delivery the event led to and why each of its
// attempts ended as it did.
type DeliveryTraceView struct {
	ID       string             `json:"id"`
	Rule     string             `json:"rule"`
	Action   string             `json:"action"`
	Status   string             `json:"status"`
	Attempts []AttemptTraceView `json:"attempts"`
	// DeadBecause says why a dead delivery ended.
	DeadBecause string `json:"dead_because,omitempty"`
}

// AttemptTraceView is one attempt and what it decided.
type AttemptTraceView struct {
	N          int       `json:"n"`
	StartedAt  time.Time `json:"started_at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	// Outcome is what the attempt made of the delivery (succeeded,
	// retrying, dead), Reason the class of why (retry, retry-after,
	// last-attempt, permanent, gone); both absent for an attempt recorded
	// before they were kept.
	Outcome       string     `json:"outcome,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	Explanation   string     `json:"explanation"`
}

// eventTrace builds the trace of e, whose deliveries are ds, reading their
// attempts.
func (a *API) eventTrace(ctx context.Context, e store.Event, ds []store.Delivery, cfg *config.Config) (*EventTraceView, error) {
	red := cfg.Redactor()
	v := &EventTraceView{
		Idempotency: IdempotencyView{Key: cfg.ShownKey(e.Hook, e.IdempotencyKey), Duplicates: e.Duplicates.Count},
		Deliveries:  make([]DeliveryTraceView, 0, len(ds)),
	}
	for _, at := range e.Duplicates.Last {
		v.Idempotency.Arrivals = append(v.Idempotency.Arrivals, DuplicateView{At: at.UTC(), Answer: "duplicate"})
	}
	if t := e.Trace; t != nil {
		vv := &VerificationView{Scheme: t.Verify.Scheme, Secret: t.Verify.Secret}
		if !t.Verify.Signed.IsZero() {
			vv.SignedAt = timePtr(t.Verify.Signed)
			skew := e.ReceivedAt.Sub(t.Verify.Signed).Milliseconds()
			vv.SkewMS = &skew
		}
		v.Verification = vv
		v.Idempotency.Source = t.KeySource
		v.Idempotency.Error = red.String(t.KeyError)
		v.Rules = make([]RuleTraceView, len(t.Rules))
		for i, r := range t.Rules {
			v.Rules[i] = newRuleTraceView(r, red)
		}
	}
	for _, d := range ds {
		as, err := a.o.Store.Attempts(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		v.Deliveries = append(v.Deliveries, newDeliveryTraceView(d, as, red))
	}
	return v, nil
}

func newRuleTraceView(r store.RuleTrace, red *redact.Redactor) RuleTraceView {
	v := RuleTraceView{Rule: r.Rule, Result: r.Result, Error: red.String(r.Error)}
	for _, f := range r.Fields {
		// A field named like a credential (body.UserToken,
		// headers["x-api-key"]) shows neither its value nor what the
		// config compares it with.
		fv := FieldView{Field: red.String(f.Field), Value: red.Read(f.Field, f.Value), Absent: f.Absent, Error: red.String(f.Error)}
		for _, w := range f.Wanted {
			fv.Wanted = append(fv.Wanted, red.Read(f.Field, w))
		}
		fv.Explanation = explainField(fv)
		v.Fields = append(v.Fields, fv)
	}
	v.Explanation = explainRule(v)
	return v
}

// explainField says what a field was and what the rule wanted of it.
func explainField(f FieldView) string {
	return store.FieldTrace{Field: f.Field, Value: f.Value, Absent: f.Absent, Error: f.Error, Wanted: f.Wanted}.Explain()
}

// explainRule says in one line what a rule made of the event.
func explainRule(r RuleTraceView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule %s (%s)", r.Rule, r.Result)
	if r.Result == store.RuleError && r.Error != "" {
		fmt.Fprintf(&b, ": %s", r.Error)
	}
	for i, f := range r.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Explanation)
	}
	return b.String()
}

func newDeliveryTraceView(d store.Delivery, as []store.Attempt, red *redact.Redactor) DeliveryTraceView {
	v := DeliveryTraceView{ID: d.ID, Rule: d.Rule, Action: d.Action, Status: string(d.Status),
		Attempts: make([]AttemptTraceView, len(as))}
	for i, a := range as {
		av := AttemptTraceView{N: a.N, StartedAt: a.StartedAt.UTC(), StatusCode: a.StatusCode, Error: red.String(a.Error),
			Outcome: string(a.Outcome), Reason: a.Reason, NextAttemptAt: timePtr(a.NextAttemptAt)}
		av.Explanation = explainAttempt(av)
		v.Attempts[i] = av
	}
	if d.Status == store.DeliveryDead {
		v.DeadBecause = red.String(d.LastError)
		if len(as) > 0 {
			if why := deadReasons[as[len(as)-1].Reason]; why != "" {
				v.DeadBecause = why + ": " + v.DeadBecause
			}
		}
	}
	return v
}

// deadReasons says why a delivery whose last attempt had this reason is
// dead.
var deadReasons = map[string]string{
	store.ReasonLastAttempt: "the last attempt of the retry schedule failed",
	store.ReasonPermanent:   "a permanent error, which no retry can mend",
	store.ReasonGone:        "the receiver answered 410 Gone",
}

// timeMS is how explanations write a time: to the millisecond, as stored.
const timeMS = "2006-01-02T15:04:05.000Z07:00"

// explainAttempt says in one line why an attempt ended as it did.
func explainAttempt(a AttemptTraceView) string {
	cause := a.Error
	if a.StatusCode != 0 {
		// The client's error repeats the status ("status 500"); only what
		// it adds to it is worth saying.
		code := strconv.Itoa(a.StatusCode)
		more := strings.TrimPrefix(strings.TrimPrefix(a.Error, "status "+code), ": ")
		more = strings.TrimPrefix(more, ", ")
		cause = code
		if more != "" {
			cause += " (" + more + ")"
		}
	}
	head := fmt.Sprintf("attempt %d", a.N)
	switch a.Outcome {
	case string(store.DeliverySucceeded):
		if a.StatusCode != 0 {
			return fmt.Sprintf("%s succeeded: %d", head, a.StatusCode)
		}
		return head + " succeeded"
	case string(store.DeliveryRetrying):
		s := fmt.Sprintf("%s retried because of %s", head, cause)
		if a.NextAttemptAt != nil {
			s += ", next try due " + a.NextAttemptAt.Format(timeMS)
			if a.Reason == store.ReasonRetryAfter {
				s += " (as the receiver's Retry-After asked)"
			}
		}
		return s
	case string(store.DeliveryDead):
		s := fmt.Sprintf("%s failed for good because of %s", head, cause)
		if why := deadReasons[a.Reason]; why != "" {
			s += ": " + why
		}
		return s
	}
	if cause == "" {
		return head
	}
	return head + ": " + cause
}
