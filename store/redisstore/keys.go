package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// partitionTag is the hash tag every key carries, so that all the keys one
// script touches live in one Redis Cluster slot.
const partitionTag = "{p}"

// keys builds every key and channel name the store uses. The Lua scripts
// derive per-record keys from base (ARGV "key base") with the same layout:
// base.."evt:"..id, base.."dlv:"..id, base.."q:"..action,
// base.."lease:"..action, base.."act:"..action and
// base.."idx:dlv:status:"..status.
type keys struct {
	base string // "<prefix>:{p}:"
}

func newKeys(prefix string) keys {
	return keys{base: prefix + ":" + partitionTag + ":"}
}

// legacyDue is the single due-time index of earlier versions, a sorted set
// of every queued delivery; the store moves what it holds into the
// per-action queues (upgrade.go) and never writes it.
func (k keys) legacyDue() string { return k.base + "due" }

// queue is one action's queue: a sorted set of the ids of its deliveries
// that wait for an attempt, scored by the unix millisecond at which each
// falls due. Each action has its own, so that one action's backlog never
// hides another's due deliveries.
func (k keys) queue(action string) string { return k.base + "q:" + action }

// leases holds the ids of one action's leased deliveries, scored by the
// unix millisecond at which each lease ends: a lease that ends unrenewed
// is taken again from here, so a dead worker needs no reaper.
func (k keys) leases(action string) string { return k.base + "lease:" + action }

// queues is the set of actions that ever had queued deliveries, so that
// QueueStats finds their queues without scanning the keyspace.
func (k keys) queues() string { return k.base + "queues" }

// actionState is the hash holding one action's shared state (pause switch,
// breaker); see codec.go.
func (k keys) actionState(action string) string { return k.base + "act:" + action }

// actionStates is the set of actions that have a stored state.
func (k keys) actionStates() string { return k.base + "acts" }

// rateLimit is the key of one action's rate limit (limiter.go), or of a
// hook's as "hook:<hook>" (no action name holds a ':'). redis_rate heads it with "rate:", so the key in Redis is
// "rate:<prefix>:{p}:limit:<action>": the same hash tag, and it expires by
// itself once the limit would allow a full burst again.
func (k keys) rateLimit(action string) string { return k.base + "limit:" + action }

// event is the hash holding one event.
func (k keys) event(id string) string { return k.eventHead() + id }

// eventHead is what precedes an id in an event's key.
func (k keys) eventHead() string { return k.base + "evt:" }

// eventDeliveries lists the ids of an event's deliveries in accept order.
func (k keys) eventDeliveries(id string) string { return k.event(id) + ":dlvs" }

// delivery is the hash holding one delivery.
func (k keys) delivery(id string) string { return k.deliveryHead() + id }

// deliveryHead is what precedes an id in a delivery's key.
func (k keys) deliveryHead() string { return k.base + "dlv:" }

// attempts lists a delivery's attempts (JSON) in the order recorded.
func (k keys) attempts(id string) string { return k.delivery(id) + ":attempts" }

// idempotency holds "<eventID>|<expiresAtMs>" for an idempotency key of a
// hook. The key is hashed: it may be long and hold any bytes.
func (k keys) idempotency(hook, key string) string {
	sum := sha256.Sum256([]byte(key))
	return k.base + "idem:" + hook + ":" + hex.EncodeToString(sum[:])
}

// wake is the Pub/Sub channel on which the store announces deliveries that
// became due: new ones, retried ones and released ones.
func (k keys) wake() string { return k.base + "wake" }

// identity is the hash holding the store's identity (store.Identity):
// written once when the store is initialised, so that its absence tells a
// serving process that Redis lost its data.
func (k keys) identity() string { return k.base + "identity" }

// probe is the one key the readiness probe overwrites.
func (k keys) probe() string { return k.base + "probe" }

// The listing indexes are sorted sets of ids whose scores are all 0, so
// that they are ordered by id — ULIDs, so by creation time — and a page
// is one ZREVRANGEBYLEX below the previous page's last id.

// events indexes every event.
func (k keys) events() string { return k.base + "idx:evt" }

// hookEvents indexes the events of one hook.
func (k keys) hookEvents(hook string) string { return k.base + "idx:evt:hook:" + hook }

// statusEvents indexes the events in one status (accepted, ignored).
func (k keys) statusEvents(status string) string { return k.base + "idx:evt:status:" + status }

// deliveries indexes every delivery.
func (k keys) deliveries() string { return k.base + "idx:dlv" }

// hookDeliveries indexes the deliveries of one hook.
func (k keys) hookDeliveries(hook string) string { return k.base + "idx:dlv:hook:" + hook }

// actionDeliveries indexes the deliveries of one action.
func (k keys) actionDeliveries(action string) string { return k.base + "idx:dlv:action:" + action }

// statusDeliveries indexes the deliveries in one status; the scripts that
// change a delivery's status move it between these.
func (k keys) statusDeliveries(status string) string { return k.base + "idx:dlv:status:" + status }

// pruneLease holds "<owner>|<until ms>": the process pruning the store,
// and until when (see pruneScript).
func (k keys) pruneLease() string { return k.base + "prune:lease" }

// pruneCursor holds the id of the last event the pruner examined, so
// that the next batch goes on from there; absent to start from the oldest.
func (k keys) pruneCursor() string { return k.base + "prune:cursor" }

// apiKey is the hash holding one admin API key.
func (k keys) apiKey(id string) string { return k.base + "key:" + id }

// apiKeyHash maps the hash of a key's secret to the key's id. The scripts
// derive the key from the id with the same layout: base.."key:"..id.
func (k keys) apiKeyHash(hash string) string { return k.base + "keyhash:" + hash }

// apiKeys indexes every API key, scored by its creation (unix ms).
func (k keys) apiKeys() string { return k.base + "keys" }

// validPrefix reports whether prefix can head keys: braces would move the
// hash tag and break the one-slot guarantee.
func validPrefix(prefix string) bool {
	return prefix != "" && !strings.ContainsAny(prefix, "{}")
}
