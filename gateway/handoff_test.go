package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/store"
)

// takeAll offers a slot to every delivery of an accept and keeps what
// the accept answered.
type takeAll struct {
	offered []store.Accept
	got     []store.Accepted
	errs    []error
}

func (h *takeAll) Offer(a *store.Accept) func(store.Accepted, error) {
	var qs []store.ActionQuota
	for _, d := range a.Deliveries {
		qs = append(qs, store.ActionQuota{Action: d.Action, N: 1})
	}
	a.HandOff = &store.HandOff{Now: a.Event.ReceivedAt, TTL: time.Minute, Actions: qs}
	h.offered = append(h.offered, *a)
	return func(res store.Accepted, err error) {
		h.got = append(h.got, res)
		h.errs = append(h.errs, err)
	}
}

// The gateway offers an event's deliveries to its HandOff before the
// accept and hands it the accept's answer: the leases the store took for
// it, none for a duplicate.
func TestCatchHandsOff(t *testing.T) {
	st := tempStore(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := &takeAll{}
	f := fixture{gateway.New(st, loadConfig(t), gateway.Options{Now: func() time.Time { return now }, HandOff: h}).Handler(), st}
	body := []byte(`{"type":"order.paid","order":{"id":"o-1","total":250}}`)
	w, out := f.post(t, "/hooks/catch/shop", body, sign("new-secret", body))
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if len(h.offered) != 1 || len(h.got) != 1 || h.errs[0] != nil {
		t.Fatalf("offered %d, answered %d (%v); want one each", len(h.offered), len(h.got), h.errs)
	}
	res := h.got[0]
	if res.EventID != out["id"] || len(res.Leases) != len(h.offered[0].Deliveries) || len(res.Leases) == 0 {
		t.Fatalf("answer %+v for event %v with %d deliveries; want every delivery leased", res, out["id"], len(h.offered[0].Deliveries))
	}
	for _, l := range res.Leases {
		d, err := st.Delivery(t.Context(), l.Delivery.ID)
		if err != nil || !d.LeasedUntil.Equal(l.Until) || l.Event.ID != res.EventID {
			t.Errorf("lease %+v: stored %+v, %v", l, d, err)
		}
	}
	w, _ = f.post(t, "/hooks/catch/shop", body, sign("new-secret", body))
	if w.Code != http.StatusOK || len(h.got) != 2 || !h.got[1].Duplicate || len(h.got[1].Leases) != 0 {
		t.Fatalf("duplicate: status %d, answers %+v", w.Code, h.got)
	}
}

// panicStore panics in Accept.
type panicStore struct{ gateway.Store }

func (panicStore) Accept(context.Context, store.Accept) (store.Accepted, error) {
	panic("store bug")
}

// An accept that panics still answers the relay (with an error), which
// would otherwise hold the slots it reserved, and wait at its stop, for
// ever; the sender gets a 500.
func TestCatchHandOffAnsweredOnPanic(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := &takeAll{}
	st := panicStore{tempStore(t)}
	gw := gateway.New(st, loadConfig(t), gateway.Options{Now: func() time.Time { return now }, HandOff: h,
		Logger: slog.New(slog.DiscardHandler)})
	f := fixture{h: gw.Handler()}
	body := []byte(`{"type":"order.paid","order":{"id":"o-1","total":250}}`)
	w, _ := f.post(t, "/hooks/catch/shop", body, sign("new-secret", body))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
	if len(h.offered) != 1 || len(h.errs) != 1 || h.errs[0] == nil {
		t.Fatalf("offered %d, answered %v; want one answer, an error", len(h.offered), h.errs)
	}
}
