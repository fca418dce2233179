package storetest

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// BenchMemory measures what a stored event costs a backend's memory, as
// used reports it (Redis: INFO memory's used_memory): b.N events are
// accepted (each with a ~1 KiB payment webhook of its own as the body, its
// headers, an idempotency key kept a day and one delivery), then every
// delivery is leased and finished succeeded, with one attempt recorded.
// The bodies are realistic rather than padding, so that a backend that
// compresses them is measured fairly. It reports bytes per
// event with the delivery queued ("bytes/event-queued") and once
// delivered ("bytes/event-delivered"). Run it with a fixed count, e.g.
// -benchtime 20000x: the per-event figure is what matters, not the time.
func BenchMemory(b *testing.B, open func(b *testing.B) store.Store, used func(b *testing.B) int64) {
	s := open(b)
	ctx := b.Context()
	headers := map[string]string{"content-type": "application/json", "x-oncloudwine-signature": "5d41402abc4b2a76b9719d911017c592"}
	before := used(b)
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		key := "bench-" + strconv.Itoa(i)
		e := store.Event{ID: store.NewEventID("bench", key, now), Hook: "bench", ReceivedAt: now,
			IdempotencyKey: key, Headers: headers, Body: PaymentBody(i), MatchedRules: []string{"rule"}}
		d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), EventID: e.ID, Hook: e.Hook, Rule: "rule", Action: "action",
			Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
		if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}, KeyTTL: 24 * time.Hour}); err != nil {
			b.Fatalf("Accept: %v", err)
		}
	}
	queued := used(b)
	var finished atomic.Int64
	if err := drainLane(s, b, "action", 256, func() bool { return true }, &finished); err != nil {
		b.Fatalf("drain: %v", err)
	}
	b.StopTimer()
	if finished.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", finished.Load(), b.N)
	}
	b.ReportMetric(float64(queued-before)/float64(b.N), "bytes/event-queued")
	b.ReportMetric(float64(used(b)-before)/float64(b.N), "bytes/event-delivered")
}

// PaymentBody is webhook i of a payment provider, ~1 KiB of JSON whose ids,
// amounts and times differ from one webhook to the next.
func PaymentBody(i int) []byte {
	n := strconv.Itoa(i)
	id := fmt.Sprintf("%08x%08x", uint32(i)*2654435761, uint32(i)*40503)
	return []byte(`{"id":"evt_1Nq` + id + `","object":"event","api_version":"2023-08-16","created":` + strconv.Itoa(1695302531+i) +
		`,"data":{"object":{"id":"pi_3Nq` + id + `","object":"payment_intent","amount":` + strconv.Itoa(1000+i%9000) +
		`,"amount_capturable":0,"amount_received":` + strconv.Itoa(1000+i%9000) + `,"application":null,"capture_method":"automatic",` +
		`"client_secret":"pi_3Nq` + id + `_secret_` + id[:6] + `","confirmation_method":"automatic","created":` + strconv.Itoa(1695302530+i) +
		`,"currency":"eur","customer":"cus_` + id[4:] + `","description":"Wine club subscription - order ` + n + `",` +
		`"latest_charge":"ch_3Nq` + id + `","livemode":false,"metadata":{"order_id":"ORD-2023-10-` + n + `","club":"gold","shipping_zone":"EU-DE"},` +
		`"payment_method":"pm_1Nq` + id + `","payment_method_types":["card"],"receipt_email":"member` + n + `@example.com",` +
		`"shipping":{"address":{"city":"Berlin","country":"DE","line1":"Torstrasse ` + strconv.Itoa(1+i%200) + `","postal_code":"10119"},` +
		`"name":"Member ` + n + `"},"status":"succeeded"}},"livemode":false,"pending_webhooks":2,` +
		`"request":{"id":"req_` + id + `","idempotency_key":"` + id + `-e5f6-7890-abcd-` + id[:12] + `"},"type":"payment_intent.succeeded"}`)
}
