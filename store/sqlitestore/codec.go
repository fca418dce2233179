package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// millis stores a time as unix milliseconds; the zero time is 0.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// encodeJSON stores maps and lists as JSON text; nil encodes as "null" so
// that nil and empty read back as they were written.
func encodeJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func decodeJSON(s string, v any) error {
	return json.Unmarshal([]byte(s), v)
}

// body keeps nil and empty apart: nil is stored as NULL, empty as a
// zero-length blob.
func encodeBody(b []byte) any {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	return b
}

// eventColumns are written by Accept; eventSelect is what scanEvent reads.
const (
	eventColumns = `id, hook, received_at, idempotency_key, headers, query, body, status, matched_rules, trace`
	// The driver reads a zero-length blob as nil, so whether the body was
	// empty or absent is asked separately.
	eventSelect = eventColumns + `, body IS NOT NULL, duplicates, duplicate_arrivals, seal_key`
	// eventLeaseSelect is eventSelect without the trace and duplicates,
	// which a worker never reads.
	eventLeaseSelect = `id, hook, received_at, idempotency_key, headers, query, body, status, matched_rules, '', body IS NOT NULL, 0, '', seal_key`
)

// scanEvent reads a row of eventSelect (or a select of the same columns),
// opening what is sealed.
func (s *Store) scanEvent(row rowScanner) (store.Event, error) {
	r, err := scanEventRow(row)
	if err != nil {
		return store.Event{}, err
	}
	return r.decode(s.keys)
}

// scanListed is scanEvent for listings: an event whose sealed columns do
// not open is listed with what is kept in clear and Err.
func (s *Store) scanListed(row rowScanner) (store.Event, error) {
	ev, err := s.scanEvent(row)
	if seal.Unopened(err) {
		ev.Err, err = err, nil
	}
	return ev, err
}

// eventRow is an event as read, its JSON columns not yet decoded: Lease
// reads events inside the writer's transaction and decodes them once the
// writer has moved on.
type eventRow struct {
	ev                    store.Event
	receivedAt            int64
	headers, query, rules string
	trace, arrivals       string
	status                string
	hasBody               bool
	sealKey               string // '' when stored in clear
}

func scanEventRow(row rowScanner) (eventRow, error) {
	var r eventRow
	err := row.Scan(&r.ev.ID, &r.ev.Hook, &r.receivedAt, &r.ev.IdempotencyKey, &r.headers, &r.query,
		&r.ev.Body, &r.status, &r.rules, &r.trace, &r.hasBody, &r.ev.Duplicates.Count, &r.arrivals, &r.sealKey)
	return r, err
}

// decode decodes the row's columns, opening the sealed ones with keys.
// When they do not open, it returns the columns kept in clear with the
// error (*seal.RecordError).
func (r eventRow) decode(keys *seal.Keys) (store.Event, error) {
	ev := r.ev
	ev.Headers, ev.Query, ev.Body = nil, nil, nil
	ev.ReceivedAt = fromMillis(r.receivedAt)
	ev.Status = store.EventStatus(r.status)
	if err := decodeJSON(r.rules, &ev.MatchedRules); err != nil {
		return store.Event{}, fmt.Errorf("event %s matched rules: %w", ev.ID, err)
	}
	var err error
	if ev.Duplicates.Last, err = parseArrivals(r.arrivals); err != nil {
		return store.Event{}, fmt.Errorf("event %s duplicate arrivals: %w", ev.ID, err)
	}
	if r.sealKey != "" {
		if err := r.open(keys); err != nil {
			return ev, err
		}
	}
	ev.Body = r.ev.Body
	if r.hasBody && ev.Body == nil {
		ev.Body = []byte{}
	}
	if err := decodeJSON(r.headers, &ev.Headers); err != nil {
		return store.Event{}, fmt.Errorf("event %s headers: %w", ev.ID, err)
	}
	if err := decodeJSON(r.query, &ev.Query); err != nil {
		return store.Event{}, fmt.Errorf("event %s query: %w", ev.ID, err)
	}
	if ev.Trace, err = store.ParseTrace([]byte(r.trace)); err != nil {
		return store.Event{}, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	return ev, nil
}

// encodeTrace is the trace column of an event: ” without a trace.
func encodeTrace(t *store.EventTrace) string {
	if t == nil {
		return ""
	}
	return string(store.AppendTrace(make([]byte, 0, 256), t))
}

// The duplicate_arrivals column holds unix milliseconds, space-separated.
func encodeArrivals(ts []time.Time) string {
	b := make([]byte, 0, 14*len(ts))
	for i, t := range ts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, t.UnixMilli(), 10)
	}
	return string(b)
}

func parseArrivals(s string) ([]time.Time, error) {
	var out []time.Time
	for _, f := range strings.Fields(s) {
		ms, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, time.UnixMilli(ms).UTC())
	}
	return out, nil
}

// deliveryColumns and scanDelivery go together.
const deliveryColumns = `id, event_id, hook, rule, action, status, attempts, next_attempt_at, leased_until, last_error, created_at, updated_at, lane`

func scanDelivery(row rowScanner) (store.Delivery, error) {
	var d store.Delivery
	err := scanDeliveryAnd(row, &d)
	return d, err
}

// scanDeliveryAnd reads deliveryColumns into d and the columns selected
// after them into extra.
func scanDeliveryAnd(row rowScanner, d *store.Delivery, extra ...any) error {
	var (
		status                             string
		next, leased, createdAt, updatedAt int64
		lane                               sql.NullString
	)
	dest := append([]any{&d.ID, &d.EventID, &d.Hook, &d.Rule, &d.Action, &status, &d.Attempts,
		&next, &leased, &d.LastError, &createdAt, &updatedAt, &lane}, extra...)
	if err := row.Scan(dest...); err != nil {
		*d = store.Delivery{}
		return err
	}
	d.Status = store.DeliveryStatus(status)
	d.NextAttemptAt = fromMillis(next)
	d.LeasedUntil = fromMillis(leased)
	d.CreatedAt = fromMillis(createdAt)
	d.UpdatedAt = fromMillis(updatedAt)
	d.Lane = lane.String
	return nil
}

// attemptColumns and scanAttempt go together.
const attemptColumns = `delivery_id, n, started_at, duration_ns, method, url, request_headers, status_code, error, response_body,
	trace_dns_ns, trace_connect_ns, trace_tls_ns, trace_first_byte_ns, trace_total_ns, trace_reused,
	outcome, reason, next_attempt_at`

// traceValues are the last six values of attemptColumns: all NULL for an
// attempt without a trace.
func traceValues(t *store.Trace) []any {
	if t == nil {
		return []any{nil, nil, nil, nil, nil, nil}
	}
	return []any{int64(t.DNS), int64(t.Connect), int64(t.TLS), int64(t.FirstByte), int64(t.Total), t.Reused}
}

func scanAttempt(row rowScanner) (store.Attempt, error) {
	var (
		a          store.Attempt
		startedAt  int64
		durationNS int64
		headers    string
		tr         [5]sql.NullInt64
		reused     sql.NullBool
		outcome    string
		next       int64
	)
	if err := row.Scan(&a.DeliveryID, &a.N, &startedAt, &durationNS, &a.Method, &a.URL, &headers,
		&a.StatusCode, &a.Error, &a.ResponseBody, &tr[0], &tr[1], &tr[2], &tr[3], &tr[4], &reused,
		&outcome, &a.Reason, &next); err != nil {
		return store.Attempt{}, err
	}
	if tr[4].Valid {
		a.Trace = &store.Trace{
			DNS: time.Duration(tr[0].Int64), Connect: time.Duration(tr[1].Int64), TLS: time.Duration(tr[2].Int64),
			FirstByte: time.Duration(tr[3].Int64), Total: time.Duration(tr[4].Int64), Reused: reused.Bool,
		}
	}
	a.StartedAt = fromMillis(startedAt)
	a.Duration = time.Duration(durationNS)
	a.Outcome = store.DeliveryStatus(outcome)
	a.NextAttemptAt = fromMillis(next)
	if err := decodeJSON(headers, &a.RequestHeaders); err != nil {
		return store.Attempt{}, fmt.Errorf("attempt %s/%d headers: %w", a.DeliveryID, a.N, err)
	}
	return a, nil
}
