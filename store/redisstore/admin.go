package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

const (
	// defaultScanBudget is how many index entries one listing call
	// examines at most. A page whose filter is more selective than its
	// index may come back short, with a cursor to go on from. Examining an
	// entry costs Redis about 3 µs (2-vCPU VM, Redis 7.0), so a call holds
	// it for some 6 ms at most, or about 10 ms for a full page of 1000.
	defaultScanBudget = 2000
)

// ListEvents pages through the events indexes the filter names (its
// hook's, or every hook's; for its status, or both), merged newest first.
// Every event in them matches the hook and status, and a time window
// bounds the ids (store.CheckEventID), so a page costs about its own
// length, whatever the window and however many events are stored.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	if err := store.CheckCursor(f.Cursor, "evt"); err != nil {
		return nil, "", fmt.Errorf("redisstore: list events: %w", err)
	}
	var since, until, status string
	if !f.Since.IsZero() {
		since = store.IDsBefore("evt", f.Since)
	}
	if !f.Until.IsZero() {
		until = store.IDsBefore("evt", f.Until)
		if until <= since {
			return []store.Event{}, "", nil
		}
	}
	if f.Status != "" {
		if f.Status != store.EventAccepted && f.Status != store.EventIgnored {
			return []store.Event{}, "", nil
		}
		status = statusLetter(f.Status)
	}
	recs, next, err := s.page(ctx, "e", f.Cursor, since, until, f.Limit, f.Hook, status, "", nil)
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: list events: %w", err)
	}
	evs := make([]store.Event, 0, len(recs))
	for _, r := range recs {
		v, ok := r.rec.(string)
		if !ok {
			return nil, "", fmt.Errorf("redisstore: list events: unexpected record %T", r.rec)
		}
		e, _, err := decodeEvent(s.opener(), r.id, v, false)
		if seal.Unopened(err) {
			// Listed with what is kept in clear (store.Event.Err).
			e.Err, err = err, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: list events: %w", err)
		}
		evs = append(evs, e)
	}
	return evs, next, nil
}

// ListDeliveries pages like ListEvents through the deliveries indexes of
// the hook and action asked for, checking each delivery's status when one
// is asked for; dead deliveries come from their own index, pending and
// retrying ones from the action queues. With an EventID it reads that
// event's deliveries instead, which are few.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	if err := store.CheckCursor(f.Cursor, "dlv"); err != nil {
		return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
	}
	if f.EventID != "" {
		return s.listEventDeliveries(ctx, f)
	}
	from := "d"
	switch f.Status {
	case store.DeliveryDead:
		from = "x"
	case store.DeliveryPending, store.DeliveryRetrying:
		from = "q"
	}
	recs, next, err := s.page(ctx, from, f.Cursor, "", "", f.Limit, f.Hook, string(f.Status), f.Action, deliveryListFields)
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: list deliveries: %w", err)
	}
	ds := make([]store.Delivery, 0, len(recs))
	for _, r := range recs {
		vals, ok := r.rec.([]any)
		if !ok || len(vals) != len(deliveryListFields) {
			return nil, "", fmt.Errorf("redisstore: list deliveries: unexpected record %v", r.rec)
		}
		m := make(map[string]string, len(vals)+1)
		for i, v := range vals {
			m[deliveryListFields[i]], _ = v.(string)
		}
		m["id"] = r.id
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

// listed is one record of a page: its id and what pageScript returned.
type listed struct {
	id  string
	rec any
}

// page runs pageScript: up to limit records from the sources of from, below
// cursor, with ids in [since, until) ("": unbounded), of the hook, status
// and action given ("": any), with the fields listed (deliveries).
func (s *Store) page(ctx context.Context, from, cursor, since, until string, limit int, hook, status, action string,
	fields []string) ([]listed, string, error) {
	if err := s.upgraded(ctx); err != nil {
		return nil, "", err
	}
	limit = store.PageLimit(limit)
	// A partitioned store pages every partition at once and merges them:
	// each examines its share of the budget.
	budget := max(s.scanBudget/len(s.parts), limit+1)
	calls := make([]*scriptCall, len(s.parts))
	for i, k := range s.parts {
		args := make([]any, 0, 10+len(fields))
		args = append(args, k.base, from, cursor, since, until, limit, budget, hook, status, action)
		for _, f := range fields {
			args = append(args, f)
		}
		calls[i] = &scriptCall{keys: []string{k.indexes(), k.queues()}, args: args}
	}
	s.runAll(ctx, pageScript, calls)
	var recs []listed
	// bound is the highest next of a partition that stopped early: below
	// it, that partition's records are not known yet, so the merged page
	// ends there (or earlier) and goes on from there.
	bound := ""
	for _, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, "", err
		}
		if len(res)%2 != 1 {
			return nil, "", fmt.Errorf("unexpected reply %v", res)
		}
		next, _ := res[0].(string)
		bound = max(bound, next)
		for i := 1; i+1 < len(res); i += 2 {
			id, _ := res[i].(string)
			recs = append(recs, listed{id: id, rec: res[i+1]})
		}
	}
	if !s.partitioned() {
		return recs, bound, nil
	}
	slices.SortFunc(recs, func(a, b listed) int { return strings.Compare(b.id, a.id) })
	n := 0
	for n < len(recs) && n < limit && recs[n].id >= bound {
		n++
	}
	next := bound
	if n == limit && (n < len(recs) || bound != "") {
		next = recs[n-1].id
	}
	return recs[:n], next, nil
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
	k := s.at(id)
	keys := []string{k.delivery(id), k.deadIndex(), k.queues()}
	res, err := retryScript.Run(ctx, s.c, keys, id, at.UnixMilli(), s.k.wake(), k.base).Result()
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
	// The delivery is queued again: its action's idle marks end, every
	// one of them when the reply does not say which action it is.
	m, err := fieldMap(res)
	var d store.Delivery
	if err == nil {
		d, err = decodeDelivery(m)
	}
	if err != nil {
		s.queued(nil)
		return store.Delivery{}, fmt.Errorf("redisstore: retry %s: %w", id, err)
	}
	s.queued([]string{d.Action})
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
	k := s.at(eventID)
	if len(ds) == 0 {
		n, err := s.c.Exists(ctx, k.event(eventID)).Result()
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
		hook, err = s.eventHook(ctx, eventID)
		if err != nil {
			return fail(err)
		}
	}
	keys := make([]string, 0, 3+3*len(ds))
	if err := checkDeliveryParts(s, s.partOf(eventID), eventID, ds); err != nil {
		return fail(err)
	}
	keys = append(keys, k.queues(), k.event(eventID), k.indexes())
	args := make([]any, 0, 6+len(rules)+len(ds)*8)
	args = append(args, eventID, s.k.wake(), k.base, len(rules))
	for _, r := range rules {
		if err := checkName("rule", r); err != nil {
			return fail(err)
		}
		args = append(args, r)
	}
	ds = slices.Clone(ds) // normalised below; the caller's slice stays as given
	for i, d := range ds {
		if d.ID == "" {
			return fail(fmt.Errorf("delivery %d has no id", i))
		}
		if err := checkName("delivery id", d.ID); err != nil {
			return fail(err)
		}
		if d.CreatedAt.IsZero() && d.NextAttemptAt.IsZero() {
			return fail(fmt.Errorf("delivery %s has neither CreatedAt nor NextAttemptAt", d.ID))
		}
		ds[i] = store.Enqueued(d, eventID, hook, d.NextAttemptAt)
	}
	names := indexNames(ds)
	args = append(args, len(names))
	args = append(args, names...)
	keys, args = enqueueArgs(k, keys, args, ds, nil)
	res, err := addDeliveriesScript.Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return fail(err)
	}
	s.queued(actionsOf(ds, deliveryAction))
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

// eventHook reads the hook of a stored event from its head.
func (s *Store) eventHook(ctx context.Context, eventID string) (string, error) {
	k := s.at(eventID)
	v, err := s.c.GetRange(ctx, k.event(eventID), 0, 511).Result()
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", store.ErrNotFound
	}
	head, _, ok := strings.Cut(v, "\n")
	if !ok {
		// A hook too long for the range read: read the whole event.
		if v, err = s.c.Get(ctx, k.event(eventID)).Result(); err != nil {
			return "", err
		}
		head, _, _ = strings.Cut(v, "\n")
	}
	parts := strings.SplitN(head, "|", 4)
	if len(parts) != 4 {
		return "", fmt.Errorf("event %s: stored value: short head", eventID)
	}
	return parts[3], nil
}
