package redisstore

import (
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/store"
)

// hashTag is the part of key Redis Cluster hashes: the first {...} with
// something inside, else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestKeysShareOneSlot(t *testing.T) {
	k := newKeys("hr")
	all := []string{
		k.legacyDue(),
		k.queue("crm"),
		k.leases("crm"),
		k.base + "q:" + "crm", // as the scripts build it
		k.base + "lease:" + "crm",
		k.base + "ix:" + "dead", // as the scripts build it
		k.base + "ix:" + deliveryIndexName("orders", "crm"),
		k.queues(),
		k.actionState("crm{x}"),
		k.actionStates(),
		k.event("evt_1"),
		k.delivery("dlv_1"),
		k.attempts("dlv_1"),
		k.idempotency("hook{x}", "key with {braces}"),
		k.base + "dlv:" + "dlv_2", // as the scripts build it
		k.indexes(),
		k.eventIndex("orders", store.EventAccepted),
		k.eventIndex("hook{x}", store.EventIgnored),
		k.deliveryIndex("hook{x}", "crm"),
		k.deadIndex(),
		k.legacyEvents(),
		k.legacyDeliveries(),
		k.apiKey("key_1"),
		k.apiKeyHash("abc"),
		k.apiKeys(),
	}
	for _, key := range all {
		if got := hashTag(key); got != "p" {
			t.Errorf("key %q hashes on %q, want p", key, got)
		}
		if !strings.HasPrefix(key, "hr:{p}:") {
			t.Errorf("key %q is not under hr:{p}:", key)
		}
	}
	// redis_rate heads its keys with "rate:": the hash tag still holds.
	if got := hashTag("rate:" + k.rateLimit("crm")); got != "p" {
		t.Errorf("rate limit key hashes on %q, want p", got)
	}
	if k.queue("crm") != k.base+"q:crm" || k.leases("crm") != k.base+"lease:crm" ||
		k.actionState("crm") != k.base+"act:crm" || k.deadIndex() != k.base+"ix:dead" ||
		k.eventIndex("orders", store.EventIgnored) != k.base+"ix:e:i:orders" || k.deliveryIndex("orders", "crm") != k.base+"ix:d:orders|crm" {
		t.Error("keys.go and the scripts build the per-action or index keys differently")
	}
	if a, b := k.idempotency("h1", "k"), k.idempotency("h2", "k"); a == b {
		t.Errorf("the same key on two hooks maps to one Redis key %q", a)
	}
}

func TestValidPrefix(t *testing.T) {
	for p, want := range map[string]bool{"hr": true, "hrtest:ab12": true, "": false, "a{b": false, "a}": false} {
		if got := validPrefix(p); got != want {
			t.Errorf("validPrefix(%q) = %v, want %v", p, got, want)
		}
	}
}
