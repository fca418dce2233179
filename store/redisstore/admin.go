package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

const (
	// defaultScanBudget is how many index entries one listing call
	// examines at most. A page whose filter is more selective than its
	// index may come back short, with a cursor to go on from. Examining an
	// entry costs Redis about 3 µs (2-vCPU VM, Redis 7.0), so a call holds
	// it for some 6 ms at most, or about 10 ms for a full page of 1000.
	defaultScanBudget = 2000
)

// ListEvents pages through the events index that holds the fewest entries
// among those the filter names (all, the hook's, the status's), newest
// first, and checks each event against the whole filter. It examines at
// most defaultScanBudget entries (or one more than the page): past that a
// page may be short, even empty, while next is not "". A time window is
// checked event by event, so a narrow window far in the past takes many
// calls.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	if err := store.CheckCursor(f.Cursor, "evt"); err != nil {
		return nil, "", fmt.Errorf("redisstore: list events: %w", err)
	}
	keys := []string{s.k.events()}
	var eq []any
	if f.Hook != "" {
		keys = append(keys, s.k.hookEvents(f.Hook))
		eq = append(eq, "hook", f.Hook)
	}
	if f.Status != "" {
		keys = append(keys, s.k.statusEvents(string(f.Status)))
		eq = append(eq, "status", string(f.Status))
	}
	recs, next, err := s.page(ctx, keys, s.k.eventHead(), f.Cursor, f.Limit, eventListFields, eq, "recv", f.Since, f.Until)
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: list events: %w", err)
	}
	evs := make([]store.Event, 0, len(recs))
	for _, m := range recs {
		e, err := decodeEvent(m)
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: list events: %w", err)
		}
		e.Body = nil
		evs = append(evs, e)
	}
	return evs, next, nil
}

// ListDeliveries pages like ListEvents; with an EventID it reads that
// event's deliveries instead, which are few.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	if err := store.CheckCursor(f.Cursor, "dlv"); err != nil {
		return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
	}
	if f.EventID != "" {
		return s.listEventDeliveries(ctx, f)
	}
	keys := []string{s.k.deliveries()}
	var eq []any
	if f.Hook != "" {
		keys = append(keys, s.k.hookDeliveries(f.Hook))
		eq = append(eq, "hook", f.Hook)
	}
	if f.Action != "" {
		keys = append(keys, s.k.actionDeliveries(f.Action))
		eq = append(eq, "action", f.Action)
	}
	if f.Status != "" {
		keys = append(keys, s.k.statusDeliveries(string(f.Status)))
		eq = append(eq, "status", string(f.Status))
	}
	recs, next, err := s.page(ctx, keys, s.k.deliveryHead(), f.Cursor, f.Limit, deliveryListFields, eq, "", time.Time{}, time.Time{})
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
	}
	ds := make([]store.Delivery, 0, len(recs))
	for _, m := range recs {
		d, err := decodeDelivery(m)
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, next, nil
}

// listEventDeliveries filters and pages one event's deliveries in Go. An
// unknown event has none.
func (s *Store) listEventDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	all, err := s.Deliveries(ctx, f.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return []store.Delivery{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
	}
	slices.SortFunc(all, func(a, b store.Delivery) int { return strings.Compare(b.ID, a.ID) })
	limit := store.PageLimit(f.Limit)
	out := []store.Delivery{}
	for _, d := range all {
		switch {
		case f.Cursor != "" && d.ID >= f.Cursor,
			f.Hook != "" && d.Hook != f.Hook,
			f.Action != "" && d.Action != f.Action,
			f.Status != "" && d.Status != f.Status:
			continue
		}
		if len(out) == limit {
			return out, out[limit-1].ID, nil
		}
		out = append(out, d)
	}
	return out, "", nil
}

// page runs pageScript: up to limit records under head whose ids are in
// every one of keys, below cursor, with the fields eq names equal to their
// values and timeField in [since, until) (zero: unbounded).
func (s *Store) page(ctx context.Context, keys []string, head, cursor string, limit int, fields []string, eq []any,
	timeField string, since, until time.Time) ([]map[string]string, string, error) {
	limit = store.PageLimit(limit)
	args := make([]any, 0, 9+len(fields)+len(eq))
	args = append(args, head, cursor, limit, max(s.scanBudget, limit+1), len(fields))
	for _, f := range fields {
		args = append(args, f)
	}
	args = append(args, len(eq)/2)
	args = append(args, eq...)
	args = append(args, timeField, ms(since), ms(until))
	res, err := pageScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return nil, "", err
	}
	if len(res) == 0 {
		return nil, "", fmt.Errorf("unexpected reply %v", res)
	}
	next, _ := res[0].(string)
	recs := make([]map[string]string, 0, len(res)-1)
	for _, r := range res[1:] {
		m, err := fieldMap(r)
		if err != nil {
			return nil, "", err
		}
		recs = append(recs, m)
	}
	return recs, next, nil
}

// RetryDelivery makes the delivery pending and due at at, keeping its
// attempts and last error, and wakes the relays. A pending delivery that
// no worker holds at at may be retried too (it is only re-timed); a
// succeeded one, or one leased past at, is store.ErrConflict. Its
// UpdatedAt becomes at.
func (s *Store) RetryDelivery(ctx context.Context, id string, at time.Time) (store.Delivery, error) {
	if at.IsZero() {
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: no time given", id)
	}
	keys := []string{s.k.delivery(id), s.k.statusDeliveries(string(store.DeliveryPending)), s.k.queues()}
	res, err := retryScript.Run(ctx, s.c, keys, id, at.UnixMilli(), s.k.wake(), s.k.base).Result()
	if err != nil {
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: %w", id, err)
	}
	switch res {
	case int64(-1):
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: %w", id, store.ErrNotFound)
	case int64(0):
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: it succeeded: %w", id, store.ErrConflict)
	case int64(-2):
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: a worker holds it: %w", id, store.ErrConflict)
	}
	m, err := fieldMap(res)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: %w", id, err)
	}
	d, err := decodeDelivery(m)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: %w", id, err)
	}
	return d, nil
}

// AddDeliveries stores and enqueues ds as new deliveries of the event, as
// Accept does (a delivery without CreatedAt was created at its
// NextAttemptAt), marks the event accepted, adds rules to its matched rules
// and wakes the relays, in one script. Without deliveries it only checks
// that the event exists. A delivery id that exists already is
// store.ErrConflict, and nothing is stored.
func (s *Store) AddDeliveries(ctx context.Context, eventID string, rules []string, ds []store.Delivery) error {
	fail := func(err error) error { return fmt.Errorf("redisstore: add deliveries to %s: %w", eventID, err) }
	if len(ds) == 0 {
		n, err := s.c.Exists(ctx, s.k.event(eventID)).Result()
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return fail(store.ErrNotFound)
		}
		return nil
	}
	// A delivery without a hook takes the event's, which never changes, so
	// reading it ahead of the script is safe; the script's keys depend on it.
	hook := ""
	if slices.ContainsFunc(ds, func(d store.Delivery) bool { return d.Hook == "" }) {
		var err error
		hook, err = s.c.HGet(ctx, s.k.event(eventID), "hook").Result()
		if errors.Is(err, redis.Nil) {
			return fail(store.ErrNotFound)
		}
		if err != nil {
			return fail(err)
		}
	}
	keys := make([]string, 0, 7+4*len(ds))
	keys = append(keys, s.k.queues(), s.k.event(eventID), s.k.eventDeliveries(eventID),
		s.k.statusEvents(string(store.EventIgnored)), s.k.statusEvents(string(store.EventAccepted)),
		s.k.deliveries(), s.k.statusDeliveries(string(store.DeliveryPending)))
	args := make([]any, 0, 4+len(rules)+len(ds)*24)
	args = append(args, eventID, s.k.wake(), len(rules))
	for _, r := range rules {
		args = append(args, r)
	}
	ds = slices.Clone(ds) // normalised below; the caller's slice stays as given
	for i, d := range ds {
		if d.ID == "" {
			return fail(fmt.Errorf("delivery %d has no id", i))
		}
		if d.CreatedAt.IsZero() && d.NextAttemptAt.IsZero() {
			return fail(fmt.Errorf("delivery %s has neither CreatedAt nor NextAttemptAt", d.ID))
		}
		ds[i] = store.Enqueued(d, eventID, hook, d.NextAttemptAt)
	}
	keys, args = s.enqueueArgs(keys, args, ds)
	res, err := addDeliveriesScript.Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return fail(err)
	}
	switch v := res.(type) {
	case int64:
		if v < 0 {
			return fail(store.ErrNotFound)
		}
		return nil
	case []any:
		if len(v) == 1 {
			if i, ok := v[0].(int64); ok && i >= 0 && int(i) < len(ds) {
				return fail(fmt.Errorf("delivery %s exists already: %w", ds[i].ID, store.ErrConflict))
			}
		}
	}
	return fail(fmt.Errorf("unexpected reply %v", res))
}
