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
// base.."evt:"..id and base.."dlv:"..id.
type keys struct {
	base string // "<prefix>:{p}:"
}

func newKeys(prefix string) keys {
	return keys{base: prefix + ":" + partitionTag + ":"}
}

// due is the due-time index: a sorted set of delivery ids scored by the unix
// millisecond at which each falls due (its next attempt, or its lease's end).
func (k keys) due() string { return k.base + "due" }

// event is the hash holding one event.
func (k keys) event(id string) string { return k.base + "evt:" + id }

// eventDeliveries lists the ids of an event's deliveries in accept order.
func (k keys) eventDeliveries(id string) string { return k.event(id) + ":dlvs" }

// delivery is the hash holding one delivery.
func (k keys) delivery(id string) string { return k.base + "dlv:" + id }

// attempts lists a delivery's attempts (JSON) in the order recorded.
func (k keys) attempts(id string) string { return k.delivery(id) + ":attempts" }

// idempotency holds "<eventID>|<expiresAtMs>" for an idempotency key of a
// hook. The key is hashed: it may be long and hold any bytes.
func (k keys) idempotency(hook, key string) string {
	sum := sha256.Sum256([]byte(key))
	return k.base + "idem:" + hook + ":" + hex.EncodeToString(sum[:])
}

// wake is the Pub/Sub channel on which Accept announces new deliveries.
func (k keys) wake() string { return k.base + "wake" }

// validPrefix reports whether prefix can head keys: braces would move the
// hash tag and break the one-slot guarantee.
func validPrefix(prefix string) bool {
	return prefix != "" && !strings.ContainsAny(prefix, "{}")
}
