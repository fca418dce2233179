package main

import (
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/store"
)

// Below saturation, on either store, the relay takes each event's delivery
// in the accept that stores it (Hand-off at accept): the deliveries are
// counted as handed off, and each reaches the receiver once.
func TestHandOffEndToEnd(t *testing.T) {
	onEachStore(t, func(t *testing.T, b storeBackend) {
		storeURL := b.url(t)
		rc := newReceiver(t)
		rc.respond = func(string, int) int { return http.StatusOK }
		srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: metricsConfig(t)})
		st := openTestStore(t, storeURL)

		// The first event may come before the relay's first lease has found
		// the queue empty; the ones after it come to an idle relay.
		waitDelivery(t, st, srv.sendEvent(t, map[string]any{"kind": "good", "n": 0}), store.DeliverySucceeded)
		before, _ := scrape(t, srv.addr)
		const n = 5
		for i := 1; i <= n; i++ {
			d := waitDelivery(t, st, srv.sendEvent(t, map[string]any{"kind": "good", "n": i}), store.DeliverySucceeded)
			if d.Attempts != 1 {
				t.Errorf("delivery %s took %d attempts, want 1", d.ID, d.Attempts)
			}
		}
		after, _ := scrape(t, srv.addr)
		handed := metricValue(after, "hookrelay_deliveries_handed_off_total", "action", "ok") -
			metricValue(before, "hookrelay_deliveries_handed_off_total", "action", "ok")
		if handed != n {
			t.Errorf("%v of %d deliveries to an idle relay were handed off at their accept, want all", handed, n)
		}
		if got := len(rc.waitFor(t, "/ok", n+1)); got != n+1 {
			t.Errorf("the receiver got %d requests, want %d", got, n+1)
		}
	})
}
