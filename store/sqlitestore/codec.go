package sqlitestore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/store"
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
	eventColumns = `id, hook, received_at, idempotency_key, headers, query, body, status, matched_rules`
	// The driver reads a zero-length blob as nil, so whether the body was
	// empty or absent is asked separately.
	eventSelect = eventColumns + `, body IS NOT NULL`
)

func scanEvent(row rowScanner) (store.Event, error) {
	var (
		ev                    store.Event
		receivedAt            int64
		headers, query, rules string
		body                  []byte
		status                string
		hasBody               bool
	)
	if err := row.Scan(&ev.ID, &ev.Hook, &receivedAt, &ev.IdempotencyKey, &headers, &query, &body, &status, &rules, &hasBody); err != nil {
		return store.Event{}, err
	}
	ev.ReceivedAt = fromMillis(receivedAt)
	ev.Status = store.EventStatus(status)
	ev.Body = body
	if hasBody && body == nil {
		ev.Body = []byte{}
	}
	if err := decodeJSON(headers, &ev.Headers); err != nil {
		return store.Event{}, fmt.Errorf("event %s headers: %w", ev.ID, err)
	}
	if err := decodeJSON(query, &ev.Query); err != nil {
		return store.Event{}, fmt.Errorf("event %s query: %w", ev.ID, err)
	}
	if err := decodeJSON(rules, &ev.MatchedRules); err != nil {
		return store.Event{}, fmt.Errorf("event %s matched rules: %w", ev.ID, err)
	}
	return ev, nil
}

// deliveryColumns and scanDelivery go together.
const deliveryColumns = `id, event_id, hook, rule, action, status, attempts, next_attempt_at, leased_until, last_error, created_at, updated_at`

func scanDelivery(row rowScanner) (store.Delivery, error) {
	var (
		d                                  store.Delivery
		status                             string
		next, leased, createdAt, updatedAt int64
	)
	if err := row.Scan(&d.ID, &d.EventID, &d.Hook, &d.Rule, &d.Action, &status, &d.Attempts,
		&next, &leased, &d.LastError, &createdAt, &updatedAt); err != nil {
		return store.Delivery{}, err
	}
	d.Status = store.DeliveryStatus(status)
	d.NextAttemptAt = fromMillis(next)
	d.LeasedUntil = fromMillis(leased)
	d.CreatedAt = fromMillis(createdAt)
	d.UpdatedAt = fromMillis(updatedAt)
	return d, nil
}

// attemptColumns and scanAttempt go together.
const attemptColumns = `delivery_id, n, started_at, duration_ns, method, url, request_headers, status_code, error, response_body`

func scanAttempt(row rowScanner) (store.Attempt, error) {
	var (
		a          store.Attempt
		startedAt  int64
		durationNS int64
		headers    string
	)
	if err := row.Scan(&a.DeliveryID, &a.N, &startedAt, &durationNS, &a.Method, &a.URL, &headers,
		&a.StatusCode, &a.Error, &a.ResponseBody); err != nil {
		return store.Attempt{}, err
	}
	a.StartedAt = fromMillis(startedAt)
	a.Duration = time.Duration(durationNS)
	if err := decodeJSON(headers, &a.RequestHeaders); err != nil {
		return store.Attempt{}, fmt.Errorf("attempt %s/%d headers: %w", a.DeliveryID, a.N, err)
	}
	return a, nil
}
