package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// page reads cursor and limit.
func page(c *gin.Context, idPrefix string) (cursor string, limit int, err error) {
	cursor = c.Query("cursor")
	if store.CheckCursor(cursor, idPrefix) != nil {
		return "", 0, errBadRequest("cursor: not a cursor returned by this API")
	}
	if s := c.Query("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > 1000 {
			return "", 0, errBadRequest("limit: want a whole number from 1 to 1000")
		}
	}
	return cursor, limit, nil
}

func timeParam(c *gin.Context, name string) (time.Time, error) {
	s := c.Query(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errBadRequest(name + ": want an RFC 3339 time such as 2026-11-23T09:00:00Z")
	}
	return t, nil
}

func (a *API) listEvents(c *gin.Context) {
	var f store.EventFilter
	var err error
	if f.Cursor, f.Limit, err = page(c, "evt"); err != nil {
		a.fail(c, err)
		return
	}
	f.Hook = c.Query("hook")
	switch s := store.EventStatus(c.Query("status")); s {
	case "", store.EventAccepted, store.EventIgnored:
		f.Status = s
	default:
		a.fail(c, errBadRequest("status: want accepted or ignored"))
		return
	}
	if f.Since, err = timeParam(c, "since"); err != nil {
		a.fail(c, err)
		return
	}
	if f.Until, err = timeParam(c, "until"); err != nil {
		a.fail(c, err)
		return
	}
	evs, next, err := a.o.Store.ListEvents(c.Request.Context(), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	data := make([]EventView, len(evs))
	for i, e := range evs {
		data[i] = newEventView(e, false, a.o.Config())
	}
	c.JSON(http.StatusOK, gin.H{"data": data, "next": next})
}

func (a *API) getEvent(c *gin.Context) {
	ctx := c.Request.Context()
	ev, err := a.o.Store.Event(ctx, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	ds, err := a.o.Store.Deliveries(ctx, ev.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	cfg := a.o.Config()
	v := newEventView(ev, true, cfg)
	v.Deliveries = make([]DeliveryView, len(ds))
	for i, d := range ds {
		v.Deliveries[i] = newDeliveryView(d, cfg.Redactor())
	}
	if v.Trace, err = a.eventTrace(ctx, ev, ds, cfg); err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// replay re-evaluates a stored event against the rules in force now and
// enqueues a new delivery for every action they match.
func (a *API) replay(c *gin.Context) {
	ctx := c.Request.Context()
	ev, err := a.o.Store.Event(ctx, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	hook, ok := a.o.Config().Hooks[ev.Hook]
	if !ok {
		a.fail(c, &apiError{http.StatusConflict, "hook " + ev.Hook + " is not in the config any more"})
		return
	}
	limits := a.o.Config().Evaluation
	body, err := rules.DecodeBodyWithin(ev.Body, ev.Headers["content-type"], 64, limits.MaxValues())
	if err != nil {
		a.fail(c, &apiError{http.StatusConflict, "stored payload cannot be decoded: " + err.Error()})
		return
	}
	env := rules.NewEnv(ev, body).Limit(limits)
	matched, matches, errs := hook.Rules.Evaluate(env)
	for _, e := range errs {
		a.log.WarnContext(c.Request.Context(), "rule failed to evaluate on replay", "hook", ev.Hook, "event_id", ev.ID, "error", e)
	}
	now := a.o.Now().UTC()
	var ds []store.Delivery
	ids := []string{}
	for _, m := range matches {
		// As at arrival; a value that cannot be had leaves it unordered.
		lane, _ := a.o.Config().Actions[m.Action].Lane(env)
		d := store.Delivery{
			ID: store.NewDeliveryID(ev.ID, now), EventID: ev.ID, Hook: ev.Hook, Rule: m.Rule, Action: m.Action,
			Lane:   lane,
			Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
		}
		ds = append(ds, d)
		ids = append(ids, d.ID)
	}
	if len(ds) == 0 {
		c.JSON(http.StatusOK, gin.H{"event_id": ev.ID, "deliveries": ids, "message": "no rule matches this event now"})
		return
	}
	if err := a.o.Store.AddDeliveries(ctx, ev.ID, matched, ds); err != nil {
		a.fail(c, err)
		return
	}
	a.log.InfoContext(c.Request.Context(), "event replayed", "hook", ev.Hook, "event_id", ev.ID, "deliveries", len(ds))
	c.JSON(http.StatusAccepted, gin.H{"event_id": ev.ID, "deliveries": ids})
}
