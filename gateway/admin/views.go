package admin

import (
	"math"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// EventView is an event as the API shows it; listings leave out headers,
// query and payload.
type EventView struct {
	ID             string            `json:"id"`
	Hook           string            `json:"hook"`
	ReceivedAt     time.Time         `json:"received_at"`
	Status         string            `json:"status"`
	IdempotencyKey string            `json:"idempotency_key"`
	MatchedRules   []string          `json:"matched_rules"`
	Headers        map[string]string `json:"headers,omitempty"`
	Query          map[string]string `json:"query,omitempty"`
	Payload        any               `json:"payload,omitempty"`
	Deliveries     []DeliveryView    `json:"deliveries,omitempty"`
	// Trace is why the event did what it did; only in an event's own view.
	Trace *EventTraceView `json:"trace,omitempty"`
	// Error, in a listing, says why the event is listed without its
	// payload: it is sealed with a key this process cannot open.
	Error string `json:"error,omitempty"`
}

// DeliveryView is a delivery as the API shows it; AttemptLog only in its own view.
type DeliveryView struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	Hook          string     `json:"hook"`
	Rule          string     `json:"rule"`
	Action        string     `json:"action"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LeasedUntil   *time.Time `json:"leased_until,omitempty"`
	LastError     string     `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	// Lane is the delivery's ordering lane (its action's order_by value);
	// absent when it has none.
	Lane       string        `json:"lane,omitempty"`
	AttemptLog []AttemptView `json:"attempt_log,omitempty"`
}

// AttemptView is one attempt of a delivery.
type AttemptView struct {
	N              int               `json:"n"`
	StartedAt      time.Time         `json:"started_at"`
	DurationMS     int64             `json:"duration_ms"`
	Method         string            `json:"method,omitempty"`
	URL            string            `json:"url,omitempty"`
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
	StatusCode     int               `json:"status_code"`
	Error          string            `json:"error,omitempty"`
	ResponseBody   string            `json:"response_body,omitempty"`
	// Outcome is what the attempt decided for its delivery, Reason why and
	// NextAttemptAt when it was due again (see docs/delivery-states.md);
	// absent for attempts recorded before they were kept.
	Outcome       string     `json:"outcome,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Trace times the request's phases, which tells a slow receiver
	// (first_byte_ms) from a slow lookup or network; absent when no
	// request was sent.
	Trace *TraceView `json:"trace,omitempty"`
}

// TraceView is an attempt's store.Trace in milliseconds, to the microsecond.
type TraceView struct {
	DNSMS       float64 `json:"dns_ms"`
	ConnectMS   float64 `json:"connect_ms"`
	TLSMS       float64 `json:"tls_ms"`
	FirstByteMS float64 `json:"first_byte_ms"`
	TotalMS     float64 `json:"total_ms"`
	Reused      bool    `json:"reused"` // the connection was kept alive from an earlier request
}

// KeyView is an API key as the API shows it: never its hash.
type KeyView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Secret     string     `json:"secret,omitempty"` // only in the answer to its creation
}

// ActionView is an action as the API shows it: its settings from the config
// in force, its pause switch and breaker shared by every process, and its
// queue now.
type ActionView struct {
	Name string `json:"name"`
	// InConfig is false for an action that was removed from the config but
	// still has queued deliveries or a stored state.
	InConfig bool `json:"in_config"`
	// Concurrency is the most attempts in flight per process; null when the
	// action is not in the config.
	Concurrency *int `json:"concurrency"`
	// Rate is the limit across every process, such as "50/s"; null when
	// there is none.
	Rate   *string `json:"rate"`
	Paused bool    `json:"paused"`
	// ChangedAt is when the pause switch or the breaker last changed; null
	// when the action never had a stored state.
	ChangedAt   *time.Time  `json:"changed_at"`
	Breaker     BreakerView `json:"breaker"`
	InFlight    int         `json:"in_flight"`
	Due         int         `json:"due"`
	Scheduled   int         `json:"scheduled"`
	OldestDueAt *time.Time  `json:"oldest_due_at"`
	// OldestDueAgeSeconds is how long the oldest due delivery has waited:
	// the figure to alert on when an action falls behind.
	OldestDueAgeSeconds float64 `json:"oldest_due_age_seconds"`
	// OrderBy is the action's order_by expression; null when its
	// deliveries are not ordered.
	OrderBy *string `json:"order_by"`
	// Lanes counts the ordering lanes with deliveries not final, Waiting
	// the deliveries that wait behind the first of their lane, and
	// BlockedLanes the lanes whose first delivery is retrying while others
	// wait behind it.
	Lanes        int `json:"lanes"`
	Waiting      int `json:"waiting"`
	BlockedLanes int `json:"blocked_lanes"`
	// OldestLaneHeadAgeSeconds is how long ago the oldest first delivery
	// of a lane was created: a lane that stops moving makes it grow.
	OldestLaneHeadAgeSeconds float64 `json:"oldest_lane_head_age_seconds"`
}

// BreakerView is an action's circuit breaker.
type BreakerView struct {
	State               string     `json:"state"` // closed, open or half-open
	ConsecutiveFailures int        `json:"consecutive_failures"`
	Opens               int        `json:"opens"`
	BlockedUntil        *time.Time `json:"blocked_until"`
	LastError           string     `json:"last_error"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Every view is built with the Redactor of the config in force, which
// masks what the config knows to be secret, credential-named values and
// credential-shaped text; nothing reaches an answer any other way.

func newEventView(e store.Event, full bool, cfg *config.Config) EventView {
	red := cfg.Redactor()
	v := EventView{
		ID: e.ID, Hook: e.Hook, ReceivedAt: e.ReceivedAt.UTC(), Status: string(e.Status),
		IdempotencyKey: cfg.ShownKey(e.Hook, e.IdempotencyKey), MatchedRules: e.MatchedRules,
	}
	if v.MatchedRules == nil {
		v.MatchedRules = []string{}
	}
	if e.Err != nil {
		v.Error = red.String(e.Err.Error())
	}
	if full {
		v.Headers = lowerKeys(red.Map(e.Headers))
		v.Query = red.Map(e.Query)
		if len(v.Query) == 0 {
			v.Query = nil
		}
		v.Payload = red.Payload(e.Body, contentType(e.Headers))
	}
	return v
}

func newDeliveryView(d store.Delivery, red *redact.Redactor) DeliveryView {
	v := DeliveryView{
		ID: d.ID, EventID: d.EventID, Hook: d.Hook, Rule: d.Rule, Action: d.Action,
		Status: string(d.Status), Attempts: d.Attempts, LastError: red.String(d.LastError),
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		LeasedUntil: timePtr(d.LeasedUntil), Lane: red.String(d.Lane),
	}
	if d.Status == store.DeliveryPending || d.Status == store.DeliveryRetrying {
		v.NextAttemptAt = timePtr(d.NextAttemptAt)
	}
	return v
}

func newAttemptView(a store.Attempt, red *redact.Redactor) AttemptView {
	return AttemptView{
		N: a.N, StartedAt: a.StartedAt.UTC(), DurationMS: a.Duration.Milliseconds(),
		Method: a.Method, URL: red.URL(a.URL), RequestHeaders: red.Map(a.RequestHeaders),
		StatusCode: a.StatusCode, Error: red.String(a.Error), ResponseBody: red.Form(a.ResponseBody),
		Outcome: string(a.Outcome), Reason: a.Reason, NextAttemptAt: timePtr(a.NextAttemptAt),
		Trace: newTraceView(a.Trace),
	}
}

func newTraceView(t *store.Trace) *TraceView {
	if t == nil {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &TraceView{DNSMS: ms(t.DNS), ConnectMS: ms(t.Connect), TLSMS: ms(t.TLS),
		FirstByteMS: ms(t.FirstByte), TotalMS: ms(t.Total), Reused: t.Reused}
}

func newKeyView(k store.APIKey) KeyView {
	return KeyView{
		ID: k.ID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC(),
		LastUsedAt: timePtr(k.LastUsedAt), RevokedAt: timePtr(k.RevokedAt),
	}
}

// newActionView shows the action name; act is nil when the config in
// force has no such action, st and qs are the zero values when nothing is
// stored or queued for it.
func newActionView(name string, act *actions.Action, st store.ActionState, qs store.QueueStats, now time.Time, red *redact.Redactor) ActionView {
	v := ActionView{
		Name: name, InConfig: act != nil, Paused: st.Paused, ChangedAt: timePtr(st.ChangedAt),
		Breaker: BreakerView{
			State: string(st.Breaker), ConsecutiveFailures: st.Failures, Opens: st.Opens,
			BlockedUntil: timePtr(st.BlockedUntil),
			// The breaker's error is an attempt's, shown as a delivery's
			// last error is.
			LastError: red.String(st.LastError),
		},
		InFlight: qs.InFlight, Due: qs.Due, Scheduled: qs.Scheduled, OldestDueAt: timePtr(qs.OldestDue),
		Lanes: qs.Lanes, Waiting: qs.Waiting, BlockedLanes: qs.BlockedLanes,
	}
	if !qs.OldestLaneHead.IsZero() && now.After(qs.OldestLaneHead) {
		v.OldestLaneHeadAgeSeconds = math.Round(now.Sub(qs.OldestLaneHead).Seconds()*1000) / 1000
	}
	if v.Breaker.State == "" {
		v.Breaker.State = string(store.BreakerClosed)
	}
	if act != nil {
		n := act.Concurrency
		if n <= 0 {
			n = actions.DefaultConcurrency
		}
		v.Concurrency = &n
		if act.OrderBy != nil {
			src := act.OrderBy.Source()
			v.OrderBy = &src
		}
		if !act.Rate.IsZero() {
			r := act.Rate.String()
			v.Rate = &r
		}
	}
	if !qs.OldestDue.IsZero() && now.After(qs.OldestDue) {
		v.OldestDueAgeSeconds = math.Round(now.Sub(qs.OldestDue).Seconds()*1000) / 1000
	}
	return v
}

func lowerKeys(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// contentType is the Content-Type an event arrived with.
func contentType(h map[string]string) string {
	for k, v := range h {
		if strings.EqualFold(k, "Content-Type") {
			return v
		}
	}
	return ""
}
