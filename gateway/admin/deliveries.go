package admin

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/store"
)

// maxBulkRetry bounds one bulk retry; a larger backlog is retried in several calls.
const maxBulkRetry = 10000

func deliveryStatus(s string) (store.DeliveryStatus, error) {
	switch st := store.DeliveryStatus(s); st {
	case "", store.DeliveryPending, store.DeliveryRetrying, store.DeliverySucceeded, store.DeliveryDead:
		return st, nil
	}
	return "", errBadRequest("status: want pending, retrying, succeeded or dead")
}

func (a *API) listDeliveries(c *gin.Context) {
	var f store.DeliveryFilter
	var err error
	if f.Cursor, f.Limit, err = page(c, "dlv"); err != nil {
		a.fail(c, err)
		return
	}
	if f.Status, err = deliveryStatus(c.Query("status")); err != nil {
		a.fail(c, err)
		return
	}
	f.Hook, f.Action, f.EventID = c.Query("hook"), c.Query("action"), c.Query("event_id")
	ds, next, err := a.o.Store.ListDeliveries(c.Request.Context(), f)
	if err != nil {
		a.fail(c, err)
		return
	}
	data := make([]DeliveryView, len(ds))
	for i, d := range ds {
		data[i] = newDeliveryView(d, a.red())
	}
	c.JSON(http.StatusOK, gin.H{"data": data, "next": next})
}

func (a *API) getDelivery(c *gin.Context) {
	ctx := c.Request.Context()
	d, err := a.o.Store.Delivery(ctx, c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	attempts, err := a.o.Store.Attempts(ctx, d.ID)
	if err != nil {
		a.fail(c, err)
		return
	}
	v := newDeliveryView(d, a.red())
	v.AttemptLog = make([]AttemptView, len(attempts))
	for i, at := range attempts {
		v.AttemptLog[i] = newAttemptView(at, a.red())
	}
	c.JSON(http.StatusOK, v)
}

// retryOne makes a dead or retrying delivery due now.
func (a *API) retryOne(c *gin.Context) {
	d, err := a.o.Store.RetryDelivery(c.Request.Context(), c.Param("id"), a.o.Now().UTC())
	if errors.Is(err, store.ErrConflict) {
		a.fail(c, &apiError{http.StatusConflict, "only a dead or retrying delivery that no worker holds can be retried"})
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	a.log.InfoContext(c.Request.Context(), "delivery retried by operator", "delivery_id", d.ID, "event_id", d.EventID, "action", d.Action)
	c.JSON(http.StatusAccepted, newDeliveryView(d, a.red()))
}

type bulkRetry struct {
	Status string `json:"status"` // dead (default) or retrying
	Hook   string `json:"hook"`
	Action string `json:"action"`
}

// retryMany retries every delivery matching a filter and answers how many.
func (a *API) retryMany(c *gin.Context) {
	var req bulkRetry
	if c.Request.ContentLength != 0 {
		if err := c.ShouldBindJSON(&req); err != nil {
			a.fail(c, errBadRequest("body: want JSON {\"status\": \"dead\", \"hook\": \"…\", \"action\": \"…\"}"))
			return
		}
	}
	// Query parameters, as in the listing, override the body.
	for _, p := range []struct {
		dst  *string
		name string
	}{{&req.Status, "status"}, {&req.Hook, "hook"}, {&req.Action, "action"}} {
		if v := c.Query(p.name); v != "" {
			*p.dst = v
		}
	}
	status := store.DeliveryDead
	switch req.Status {
	case "", "dead":
	case "retrying":
		status = store.DeliveryRetrying
	default:
		a.fail(c, errBadRequest("status: only dead or retrying deliveries can be retried"))
		return
	}
	ctx := c.Request.Context()
	now := a.o.Now().UTC()
	// Collect first, then retry: retried deliveries leave the filter's status
	// and would shift the pages under the cursor.
	var ids []string
	f := store.DeliveryFilter{Status: status, Hook: req.Hook, Action: req.Action, Limit: 1000}
	for len(ids) < maxBulkRetry {
		ds, next, err := a.o.Store.ListDeliveries(ctx, f)
		if err != nil {
			a.fail(c, err)
			return
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	retried, skipped := 0, 0
	for _, id := range ids {
		if _, err := a.o.Store.RetryDelivery(ctx, id, now); err != nil {
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				skipped++ // taken by a worker or changed since it was listed
				continue
			}
			a.fail(c, err)
			return
		}
		retried++
	}
	a.log.InfoContext(c.Request.Context(), "deliveries retried by operator", "retried", retried, "skipped", skipped, "status", string(status), "hook", req.Hook, "action", req.Action)
	c.JSON(http.StatusAccepted, gin.H{"retried": retried, "skipped": skipped})
}
