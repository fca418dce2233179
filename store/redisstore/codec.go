package redisstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/store"
)

// Times are stored as unix milliseconds; the zero time as "".
func ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func parseMS(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return time.UnixMilli(n).UTC(), nil
}

// jsonField encodes maps and lists; nil and empty encode as "".
func jsonField[T any](v T, empty bool) (string, error) {
	if empty {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func parseJSON[T any](s string, v *T) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// eventFields is the event hash as field/value arguments.
func eventFields(e store.Event) ([]any, error) {
	hdr, err := jsonField(e.Headers, len(e.Headers) == 0)
	if err != nil {
		return nil, err
	}
	qry, err := jsonField(e.Query, len(e.Query) == 0)
	if err != nil {
		return nil, err
	}
	rules, err := jsonField(e.MatchedRules, len(e.MatchedRules) == 0)
	if err != nil {
		return nil, err
	}
	return []any{
		"id", e.ID,
		"hook", e.Hook,
		"recv", ms(e.ReceivedAt),
		"ikey", e.IdempotencyKey,
		"hdr", hdr,
		"qry", qry,
		"body", e.Body,
		"status", string(e.Status),
		"rules", rules,
	}, nil
}

func decodeEvent(m map[string]string) (store.Event, error) {
	e := store.Event{
		ID:             m["id"],
		Hook:           m["hook"],
		IdempotencyKey: m["ikey"],
		Body:           []byte(m["body"]),
		Status:         store.EventStatus(m["status"]),
	}
	var err error
	if e.ReceivedAt, err = parseMS(m["recv"]); err != nil {
		return e, fmt.Errorf("event %s: %w", e.ID, err)
	}
	for _, f := range []struct {
		name string
		err  error
	}{
		{"hdr", parseJSON(m["hdr"], &e.Headers)},
		{"qry", parseJSON(m["qry"], &e.Query)},
		{"rules", parseJSON(m["rules"], &e.MatchedRules)},
	} {
		if f.err != nil {
			return e, fmt.Errorf("event %s: field %s: %w", e.ID, f.name, f.err)
		}
	}
	return e, nil
}

// deliveryFields is the delivery hash, minus lease and token, as
// field/value arguments.
func deliveryFields(d store.Delivery) []any {
	return []any{
		"id", d.ID,
		"evt", d.EventID,
		"hook", d.Hook,
		"rule", d.Rule,
		"action", d.Action,
		"status", string(d.Status),
		"n", d.Attempts,
		"due", ms(d.NextAttemptAt),
		"err", d.LastError,
		"created", ms(d.CreatedAt),
		"updated", ms(d.UpdatedAt),
	}
}

func decodeDelivery(m map[string]string) (store.Delivery, error) {
	d := store.Delivery{
		ID:        m["id"],
		EventID:   m["evt"],
		Hook:      m["hook"],
		Rule:      m["rule"],
		Action:    m["action"],
		Status:    store.DeliveryStatus(m["status"]),
		LastError: m["err"],
	}
	var err error
	if n := m["n"]; n != "" {
		if d.Attempts, err = strconv.Atoi(n); err != nil {
			return d, fmt.Errorf("delivery %s: attempts %q: %w", d.ID, n, err)
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"due", &d.NextAttemptAt},
		{"lease", &d.LeasedUntil},
		{"created", &d.CreatedAt},
		{"updated", &d.UpdatedAt},
	} {
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return d, fmt.Errorf("delivery %s: field %s: %w", d.ID, f.name, err)
		}
	}
	return d, nil
}

// attemptRecord is an attempt as stored in a delivery's attempts list.
// A response body that is not valid UTF-8 is kept in base64 so that it
// round-trips byte for byte.
type attemptRecord struct {
	DeliveryID     string            `json:"dlv"`
	N              int               `json:"n"`
	StartedAt      int64             `json:"started,omitempty"` // unix ms
	Duration       int64             `json:"dur,omitempty"`     // ns
	Method         string            `json:"method,omitempty"`
	URL            string            `json:"url,omitempty"`
	RequestHeaders map[string]string `json:"req_hdr,omitempty"`
	StatusCode     int               `json:"code,omitempty"`
	Error          string            `json:"err,omitempty"`
	ResponseBody   string            `json:"resp,omitempty"`
	ResponseBase64 string            `json:"resp_b64,omitempty"`
	Trace          *traceRecord      `json:"trace,omitempty"`
}

// traceRecord is an attempt's store.Trace, durations in nanoseconds.
type traceRecord struct {
	DNS       int64 `json:"dns,omitempty"`
	Connect   int64 `json:"conn,omitempty"`
	TLS       int64 `json:"tls,omitempty"`
	FirstByte int64 `json:"ttfb,omitempty"`
	Total     int64 `json:"total"`
	Reused    bool  `json:"reused,omitempty"`
}

func encodeAttempt(a store.Attempt) (string, error) {
	r := attemptRecord{
		DeliveryID:     a.DeliveryID,
		N:              a.N,
		Duration:       int64(a.Duration),
		Method:         a.Method,
		URL:            a.URL,
		RequestHeaders: a.RequestHeaders,
		StatusCode:     a.StatusCode,
		Error:          a.Error,
	}
	if t := a.Trace; t != nil {
		r.Trace = &traceRecord{DNS: int64(t.DNS), Connect: int64(t.Connect), TLS: int64(t.TLS),
			FirstByte: int64(t.FirstByte), Total: int64(t.Total), Reused: t.Reused}
	}
	if !a.StartedAt.IsZero() {
		r.StartedAt = a.StartedAt.UnixMilli()
	}
	if utf8.ValidString(a.ResponseBody) {
		r.ResponseBody = a.ResponseBody
	} else {
		r.ResponseBase64 = base64.StdEncoding.EncodeToString([]byte(a.ResponseBody))
	}
	b, err := json.Marshal(r)
	return string(b), err
}

func decodeAttempt(s string) (store.Attempt, error) {
	var r attemptRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return store.Attempt{}, fmt.Errorf("attempt: %w", err)
	}
	a := store.Attempt{
		DeliveryID:     r.DeliveryID,
		N:              r.N,
		Duration:       time.Duration(r.Duration),
		Method:         r.Method,
		URL:            r.URL,
		RequestHeaders: r.RequestHeaders,
		StatusCode:     r.StatusCode,
		Error:          r.Error,
		ResponseBody:   r.ResponseBody,
	}
	if t := r.Trace; t != nil {
		a.Trace = &store.Trace{DNS: time.Duration(t.DNS), Connect: time.Duration(t.Connect), TLS: time.Duration(t.TLS),
			FirstByte: time.Duration(t.FirstByte), Total: time.Duration(t.Total), Reused: t.Reused}
	}
	if r.StartedAt != 0 {
		a.StartedAt = time.UnixMilli(r.StartedAt).UTC()
	}
	if r.ResponseBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.ResponseBase64)
		if err != nil {
			return a, fmt.Errorf("attempt %d of %s: response body: %w", r.N, r.DeliveryID, err)
		}
		a.ResponseBody = string(b)
	}
	return a, nil
}

// fieldMap turns a field/value list returned by a script into a map.
func fieldMap(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected script reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok1 := list[i].(string)
		val, ok2 := list[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("unexpected field in script reply: %T %T", list[i], list[i+1])
		}
		m[k] = val
	}
	return m, nil
}

// eventListFields are the fields of an event hash that listings read:
// every one but the body.
var eventListFields = []string{"id", "hook", "recv", "ikey", "hdr", "qry", "status", "rules"}

// deliveryListFields are the fields of a delivery hash that listings read:
// every one but the lease token.
var deliveryListFields = []string{"id", "evt", "hook", "rule", "action", "status", "n", "due", "lease", "err", "created", "updated"}

// apiKeyFields is the API key hash as field/value arguments.
func apiKeyFields(k store.APIKey) ([]any, error) {
	scopes, err := jsonField(k.Scopes, len(k.Scopes) == 0)
	if err != nil {
		return nil, err
	}
	return []any{
		"id", k.ID,
		"name", k.Name,
		"prefix", k.Prefix,
		"hash", k.Hash,
		"scopes", scopes,
		"created", ms(k.CreatedAt),
		"used", ms(k.LastUsedAt),
		"revoked", ms(k.RevokedAt),
	}, nil
}

func decodeAPIKey(m map[string]string) (store.APIKey, error) {
	k := store.APIKey{ID: m["id"], Name: m["name"], Prefix: m["prefix"], Hash: m["hash"]}
	if err := parseJSON(m["scopes"], &k.Scopes); err != nil {
		return k, fmt.Errorf("api key %s: field scopes: %w", k.ID, err)
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"created", &k.CreatedAt},
		{"used", &k.LastUsedAt},
		{"revoked", &k.RevokedAt},
	} {
		var err error
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return k, fmt.Errorf("api key %s: field %s: %w", k.ID, f.name, err)
		}
	}
	return k, nil
}

// actionStateFields is the action state hash, minus its version, as
// field/value arguments. Every field is written, so that a write replaces
// the whole state.
func actionStateFields(s store.ActionState) []any {
	paused := "0"
	if s.Paused {
		paused = "1"
	}
	return []any{
		"action", s.Action,
		"paused", paused,
		"breaker", string(s.Breaker),
		"failures", s.Failures,
		"opens", s.Opens,
		"blocked", ms(s.BlockedUntil),
		"changed", ms(s.ChangedAt),
		"err", s.LastError,
	}
}

func decodeActionState(m map[string]string) (store.ActionState, error) {
	s := store.ActionState{
		Action:    m["action"],
		Paused:    m["paused"] == "1",
		Breaker:   store.BreakerState(m["breaker"]),
		LastError: m["err"],
	}
	var err error
	for _, f := range []struct {
		name string
		to   *int
	}{
		{"failures", &s.Failures},
		{"opens", &s.Opens},
	} {
		if v := m[f.name]; v != "" {
			if *f.to, err = strconv.Atoi(v); err != nil {
				return s, fmt.Errorf("action %s: field %s: %w", s.Action, f.name, err)
			}
		}
	}
	if v := m["version"]; v != "" {
		if s.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return s, fmt.Errorf("action %s: field version: %w", s.Action, err)
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"blocked", &s.BlockedUntil},
		{"changed", &s.ChangedAt},
	} {
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return s, fmt.Errorf("action %s: field %s: %w", s.Action, f.name, err)
		}
	}
	return s, nil
}

// fieldValues turns field/value arguments into the map a read of them
// would return.
func fieldValues(args []any) map[string]string {
	m := make(map[string]string, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		m[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	return m
}
