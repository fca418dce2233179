package store

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a new identifier with the given prefix ("evt", "dlv"). The
// ULID part sorts by creation time, so newest-first listings page by id.
func NewID(prefix string, now time.Time) string {
	return prefix + "_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// IDsBefore is the least id of kind prefix that NewID makes at t: every id
// made earlier sorts below it, every one made at t or later not below.
func IDsBefore(prefix string, t time.Time) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(t))
	return prefix + "_" + u.String()
}

// CheckEventID accepts an event whose id NewID made at its ReceivedAt:
// listings bound a time window by ids (IDsBefore), so an event whose id
// told another time would fall out of the windows that hold it.
func CheckEventID(e Event) error {
	u, ok := strings.CutPrefix(e.ID, "evt_")
	if !ok {
		return fmt.Errorf("event id %q: want one that store.NewID(\"evt\", …) makes", e.ID)
	}
	parsed, err := ulid.ParseStrict(u)
	if err != nil {
		return fmt.Errorf("event id %q: want one that store.NewID(\"evt\", …) makes: %w", e.ID, err)
	}
	if int64(parsed.Time()) != e.ReceivedAt.UnixMilli() {
		return fmt.Errorf("event id %q: made at %s, but the event was received at %s: want the id made at its receipt",
			e.ID, ulid.Time(parsed.Time()).UTC().Format(time.RFC3339Nano), e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// An event's id carries a shard hint: the last two characters of its ULID
// hold 10 bits that a partitioned store maps to one of its partitions, so
// that a store can find an event, or one of its deliveries, from the id
// alone. An event with an idempotency key takes its hint from the hook and
// the key, so that every arrival of one key lands in the partition that
// holds the key, and the check for duplicates and the write stay one atomic
// step; its deliveries take the event's hint. Other ids' hints are random.

// Shards is how many shard hints there are: a partitioned store has at
// most this many partitions.
const Shards = 1024

// NewEventID returns a new event id (as NewID("evt", now) makes) whose shard
// hint is that of the hook's idempotency key, or random without a key.
func NewEventID(hook, key string, now time.Time) string {
	id := NewID("evt", now)
	if key == "" {
		return id
	}
	return InShard(id, KeyShard(hook, key))
}

// NewDeliveryID returns a new delivery id (as NewID("dlv", now) makes) in
// the shard of the event eventID.
func NewDeliveryID(eventID string, now time.Time) string {
	return InShard(NewID("dlv", now), Shard(eventID))
}

// KeyShard is the shard hint of an idempotency key of a hook: FNV-1a,
// whose low bits are then mixed with the high ones (MurmurHash3's
// finaliser), since keys often differ only in their last characters.
func KeyShard(hook, key string) int {
	h := uint32(2166136261)
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
	}
	mix(hook)
	mix("\x00")
	mix(key)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return int(h % Shards)
}

// Shard is the shard hint that an id carries, from 0 to Shards-1; 0 for an
// id too short to carry one.
func Shard(id string) int {
	if len(id) < 2 {
		return 0
	}
	hi := strings.IndexByte(crockford, id[len(id)-2])
	lo := strings.IndexByte(crockford, id[len(id)-1])
	if hi < 0 || lo < 0 {
		return 0
	}
	return hi<<5 | lo
}

// InShard returns the id that NewID made with its shard hint set to shard
// (0 to Shards-1): its last two characters.
func InShard(id string, shard int) string {
	b := []byte(id)
	b[len(b)-2] = crockford[shard>>5&31]
	b[len(b)-1] = crockford[shard&31]
	return string(b)
}

// LaneShard is the shard hint of an ordering lane of an action
// (Delivery.Lane).
func LaneShard(action, lane string) int { return KeyShard("\x00"+action, lane) }

// EventShard is the shard hint an event's id must carry for a partitioned
// store to keep it where it keeps what goes with it: that of the lane of
// its first delivery in a lane, so that the deliveries of one lane meet in
// one partition (and every arrival of the event, which matches the same
// rules, goes there too); else that of its idempotency key; -1 when any
// will do.
func EventShard(hook, key string, ds []Delivery) int {
	for _, d := range ds {
		if d.Lane != "" {
			return LaneShard(d.Action, d.Lane)
		}
	}
	if key != "" {
		return KeyShard(hook, key)
	}
	return -1
}
