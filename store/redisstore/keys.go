package redisstore

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/hookrelay/hookrelay/store"
)

// keys builds every key and channel name of one partition of the store
// (partition.go): each key carries the partition's hash tag, so that all
// the keys one script touches live in one Redis Cluster slot. The Lua
// scripts derive per-record keys from base (ARGV "key base") with the same
// layout: base.."evt:"..id, base.."dlv:"..id, base.."q:"..action,
// base.."lease:"..action, base.."act:"..action and base.."ix:"..name.
type keys struct {
	base string // "<prefix>:{p}:" for partition 0
}

// newKeys returns the keys of partition 0 of the store under prefix.
func newKeys(prefix string) keys {
	return keys{base: prefix + ":" + partitionTags(1)[0] + ":"}
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

// lane is the sorted set of the deliveries of one action's lane that are
// not final, scored by creation (enqueueLua).
func (k keys) lane(action, lane string) string {
	sum := sha1.Sum([]byte(lane))
	return k.base + "lane:" + action + ":" + hex.EncodeToString(sum[:])
}

// lanes maps the SHA-1 of each lane of an action that has deliveries not
// final to the id of its active delivery, the one queued or held.
func (k keys) lanes(action string) string { return k.base + "lanes:" + action }

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

// event is the string holding one event (codec.go: encodeEvent).
func (k keys) event(id string) string { return k.eventHead() + id }

// eventHead is what precedes an id in an event's key.
func (k keys) eventHead() string { return k.base + "evt:" }

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

// dicts is the hash of the store's body dictionaries (dict.go): each under
// its id, and the id of the one in use under "current". Only partition
// 0's is used.
func (k keys) dicts() string { return k.base + "dicts" }

// probe is the one key the readiness probe overwrites.
func (k keys) probe() string { return k.base + "probe" }

// The listing indexes are sorted sets of ids whose scores are all 0, so
// that they are ordered by id (ULIDs, so by creation time), and a page is
// one ZREVRANGEBYLEX below the previous page's last id, merged across the
// indexes a filter names. Each record is in exactly one index, written
// once when the record is stored: an event in its hook's index for its
// status, a delivery in the index of its hook and action. Only the rare
// changes move a record (an ignored event that gets deliveries), and a
// delivery's status, which changes with every attempt, is read from the
// queues (pending, retrying) or from the dead index (written only when a
// delivery dies) rather than from an index of its own.

// indexes is the set of the listing indexes that exist, each named by what
// follows base.."ix:" in its key: "e:<status letter>:<hook>" for events
// and "d:<hook>|<action>" for deliveries (hook names hold no "|").
func (k keys) indexes() string { return k.base + "ix" }

// eventIndex indexes the events of one hook in one status.
func (k keys) eventIndex(hook string, status store.EventStatus) string {
	return k.base + "ix:" + eventIndexName(hook, status)
}

// eventIndexName is eventIndex's member of indexes.
func eventIndexName(hook string, status store.EventStatus) string {
	return "e:" + statusLetter(status) + ":" + hook
}

// deliveryIndex indexes the deliveries of one action for one hook.
func (k keys) deliveryIndex(hook, action string) string {
	return k.base + "ix:" + deliveryIndexName(hook, action)
}

// deliveryIndexName is deliveryIndex's member of indexes.
func deliveryIndexName(hook, action string) string { return "d:" + hook + "|" + action }

// deadIndex indexes the dead deliveries.
func (k keys) deadIndex() string { return k.base + "ix:dead" }

// The indexes of earlier versions, which upgrade.go moves into those above:
// every event, per hook and per status, and every delivery, per hook, per
// action and per status.
func (k keys) legacyEvents() string     { return k.base + "idx:evt" }
func (k keys) legacyDeliveries() string { return k.base + "idx:dlv" }

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

// index is the listing index that indexes names (eventIndexName,
// deliveryIndexName).
func (k keys) index(name string) string { return k.base + "ix:" + name }
