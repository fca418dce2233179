package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// Events are sealed at rest when the store has keys (WithKeys): the meta
// (idempotency key, headers, query, trace) and the body of the event
// string (codec.go), each on its own, bound to the event's id and the
// part's name. The head (status, receipt, lengths, hook) and the records
// stay in clear, as the scripts read them. Delivery hashes and attempt
// lists are not sealed.

var _ store.Resealer = (*Store)(nil)

// WithKeys seals the events the store writes with keys' current key and
// opens those sealed with any of them. Without it, events are written in
// clear and sealed ones cannot be read.
func WithKeys(keys *seal.Keys) Option {
	return func(s *Store) { s.keys = keys }
}

// sealAD binds a sealed part to its event.
func sealAD(id, part string) []byte {
	return append(append([]byte(id), 0), part...)
}

// sealEvent seals the meta and body of event id, the body compressed as
// packed says ("z", "c" or ""), and returns them with the body's flag.
func sealEvent(keys *seal.Keys, id string, meta, body []byte, packed string) ([]byte, []byte, string) {
	meta = keys.Seal(make([]byte, 0, len(meta)+keys.Overhead()), meta, sealAD(id, "meta"))
	body = keys.Seal(make([]byte, 0, len(body)+keys.Overhead()), body, sealAD(id, "body"))
	return meta, body, sealedWith(packed)
}

// openMeta is the meta JSON of event id as stored, opened if sealed. JSON
// in clear starts with '{', and comes back as it is, uncopied.
func openMeta(keys *seal.Keys, id, meta string) (string, error) {
	if !strings.HasPrefix(meta, "{") && seal.IsSealed([]byte(meta)) {
		b, err := keys.Open(nil, []byte(meta), sealAD(id, "meta"))
		if err != nil {
			return "", &seal.RecordError{Kind: "event", ID: id, Part: "meta", Err: err}
		}
		return string(b), nil
	}
	return meta, nil
}

// openBody is the body of event id as it came: opened if sealed,
// decompressed if compressed, as its flag says.
func openBody(o opener, id, stored, flag string) ([]byte, error) {
	b := []byte(stored)
	if sealedFlag(flag) {
		var err error
		if b, err = o.keys.Open(nil, b, sealAD(id, "body")); err != nil {
			return nil, &seal.RecordError{Kind: "event", ID: id, Part: "body", Err: err}
		}
		if b == nil {
			b = []byte{}
		}
	}
	b, err := decompressBody(b, packing(flag), o.dicts)
	if err != nil {
		return nil, fmt.Errorf("event %s: body: %w", id, err)
	}
	return b, nil
}

// underKey reports whether both sealed parts of p are sealed with key.
func (p eventParts) underKey(key string) bool {
	if !sealedFlag(p.flag) {
		return false
	}
	m, err1 := seal.KeyID([]byte(p.meta))
	b, err2 := seal.KeyID([]byte(p.body))
	return err1 == nil && err2 == nil && m == key && b == key
}

// resealed is the stored string of event id from its head to its records,
// its meta and body sealed anew with keys' current key. The status letter
// is left out: resealScript keeps the one stored.
func resealed(keys *seal.Keys, id string, p eventParts) (string, error) {
	clear, err := openMeta(keys, id, p.meta)
	if err != nil {
		return "", err
	}
	meta := []byte(clear)
	body := []byte(p.body)
	packed := packing(p.flag)
	if sealedFlag(p.flag) {
		if body, err = keys.Open(nil, body, sealAD(id, "body")); err != nil {
			return "", &seal.RecordError{Kind: "event", ID: id, Part: "body", Err: err}
		}
	}
	meta, body, flag := sealEvent(keys, id, meta, body, packed)
	var b strings.Builder
	b.Grow(48 + len(p.hook) + len(meta) + len(body))
	writeEventParts(&b, p.received, p.hook, meta, body, flag)
	return b.String(), nil
}

// resealScript replaces an event's head, meta and body, keeping its status
// letter and records, if they are still those read: a change made since
// (a status change) leaves the event for the next pass.
//
//	KEYS[1]  event             <base>evt:<id>
//	ARGV[1]  head, meta and body as read, without the status letter
//	ARGV[2]  their replacement
//
// Returns 1 when replaced, 0 when the event is gone or changed.
var resealScript = redis.NewScript(eventLua + `
local v = redis.call("GET", KEYS[1])
if not v then
	return 0
end
local s, _, _, r = evhead(v)
if not s or string.sub(v, 2, r - 1) ~= ARGV[1] then
	return 0
end
redis.call("SET", KEYS[1], string.sub(v, 1, 1) .. ARGV[2] .. string.sub(v, r), "KEEPTTL")
return 1
`)

// Reseal seals anew under the store's current key the events after the
// given id, up to n of them in id order across every partition, that are
// in clear or under another key. Ids come from the events' listing
// indexes, as pruning reads them. An event that does not open stops the
// batch before anything of it is written.
func (s *Store) Reseal(ctx context.Context, after string, n int) (store.Resealed, error) {
	if s.keys == nil {
		return store.Resealed{}, errors.New("redisstore: reseal: the store has no keys to seal with")
	}
	if n <= 0 {
		return store.Resealed{}, fmt.Errorf("redisstore: reseal: batch of %d: want at least 1", n)
	}
	if err := s.upgraded(ctx); err != nil {
		return store.Resealed{}, err
	}
	ids, err := s.eventIDsAfter(ctx, after, n)
	if err != nil {
		return store.Resealed{}, fmt.Errorf("redisstore: reseal: %w", err)
	}
	res := store.Resealed{Examined: len(ids)}
	if len(ids) == n {
		res.Next = ids[len(ids)-1]
	}
	if len(ids) == 0 {
		return res, nil
	}
	gets := make([]*redis.StringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, s.at(id).event(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return store.Resealed{}, fmt.Errorf("redisstore: reseal: %w", err)
	}
	type change struct{ id, from, to string }
	var changes []change
	for i, id := range ids {
		v, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // pruned since it was listed
		}
		if err != nil {
			return store.Resealed{}, fmt.Errorf("redisstore: reseal: event %s: %w", id, err)
		}
		p, err := splitEvent(id, v)
		if err != nil {
			return store.Resealed{}, fmt.Errorf("redisstore: reseal: %w", err)
		}
		// Those under the current key are opened too, so that a wrong key
		// under the current id is told, not passed over.
		to, err := resealed(s.keys, id, p)
		if err != nil {
			return store.Resealed{}, fmt.Errorf("redisstore: reseal: %w", err)
		}
		if p.underKey(s.keys.Current()) {
			continue
		}
		changes = append(changes, change{id, v[1:p.records], to})
	}
	if len(changes) == 0 {
		return res, nil
	}
	calls := make([]*scriptCall, len(changes))
	for i, c := range changes {
		calls[i] = &scriptCall{keys: []string{s.at(c.id).event(c.id)}, args: []any{c.from, c.to}}
	}
	s.runAll(ctx, resealScript, calls)
	for i, c := range calls {
		n, err := c.cmd.Int()
		if err != nil {
			return res, fmt.Errorf("redisstore: reseal: event %s: %w", changes[i].id, err)
		}
		res.Resealed += n
	}
	return res, nil
}

// OldestEventID is the first event id of every partition's events
// indexes.
func (s *Store) OldestEventID(ctx context.Context) (string, error) {
	if err := s.upgraded(ctx); err != nil {
		return "", err
	}
	ids, err := s.eventIDsAfter(ctx, "", 1)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// eventIDsAfter returns the first n event ids after after ("" for the
// first), in id order, from every partition's events indexes.
func (s *Store) eventIDsAfter(ctx context.Context, after string, n int) ([]string, error) {
	names := make([]*redis.StringSliceCmd, len(s.parts))
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range s.parts {
			names[i] = p.SMembers(ctx, k.indexes())
		}
		return nil
	}); err != nil {
		return nil, err
	}
	from := "-"
	if after != "" {
		from = "(" + after
	}
	var ranges []*redis.StringSliceCmd
	if _, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range s.parts {
			for _, name := range names[i].Val() {
				if strings.HasPrefix(name, "e:") {
					ranges = append(ranges, p.ZRangeByLex(ctx, k.index(name), &redis.ZRangeBy{Min: from, Max: "+", Count: int64(n)}))
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range ranges {
		ids = append(ids, r.Val()...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids, nil
}
