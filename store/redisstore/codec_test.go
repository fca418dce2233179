package redisstore

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// FuzzEncodeMeta: what encodeMeta writes is JSON that reads back as the
// meta it was given, as encoding/json's own output would (invalid UTF-8
// read back as encoding/json writes it).
func FuzzEncodeMeta(f *testing.F) {
	f.Add("key-1", "content-type", "application/json", "q", "a b")
	f.Add("", "x-\"quoted\"\\", "tab\there\nnew\rline\x00\x1f", "<>&", "ünïcödé \u2028")
	f.Add("\xff\xfe", "k", "v\xc3", "", "")
	f.Fuzz(func(t *testing.T, key, hk, hv, qk, qv string) {
		m := eventMeta{Key: key, Headers: map[string]string{hk: hv, "content-type": "application/json"}}
		if qk != "" {
			m.Query = map[string]string{qk: qv}
		}
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		var got eventMeta
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("encodeMeta wrote %q, not JSON: %v", b, err)
		}
		std, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var want eventMeta
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("encodeMeta %q reads back differently from encoding/json's %q (-want +got):\n%s", b, std, diff)
		}
		// What encodeMeta writes is read without encoding/json, and as
		// encoding/json reads it.
		fast, ok := readMeta(string(b))
		if !ok {
			t.Fatalf("readMeta left %q, written by encodeMeta, to encoding/json", b)
		}
		if diff := cmp.Diff(got, fast); diff != "" {
			t.Errorf("readMeta %q (-encoding/json +readMeta):\n%s", b, diff)
		}
	})
}

// FuzzDecodeMeta: decodeMeta reads any input as encoding/json reads it
// into an eventMeta, and fails where encoding/json fails.
func FuzzDecodeMeta(f *testing.F) {
	tr := &store.EventTrace{Verify: store.VerifyTrace{Scheme: "hmac", Secret: 1}, KeySource: store.KeyFromExpression,
		Rules: []store.RuleTrace{{Rule: "r", Result: store.RuleMatched, Fields: []store.FieldTrace{
			{Field: `headers["x-kind"]`, Value: `{"a":[1,-2.5e3,true,null,"\u00e9"]}`, Wanted: []string{`== "A"`}}}}}}
	for _, m := range []eventMeta{
		{},
		{Key: "k1", Headers: map[string]string{"content-type": "application/json", "x-q": `say "hi"\`}, Query: map[string]string{"a": "<b>"}, Trace: tr},
		{Headers: map[string]string{"x": "caf\xe9"}, Trace: tr},
		{Query: map[string]string{}, Headers: map[string]string{"ünï": "\u2028\t"}},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		`{"k":"a","k":"b"}`, `{"h":{"a":"1"},"h":{"b":"2"}}`, `{"h":{"a":"1","a":"2"}}`, `{"h":null}`, `{"k":null}`,
		`{ "k":"a"}`, `{"K":"a"}`, `{"\u006b":"a"}`, `{"x":1,"k":"a"}`, `{"h":{"a":1}}`, `{"k":"a"}x`, `{"k":"a"`,
		`{"t":[1,,2]}`, `{"t":01}`, `{"t":-}`, `{"t":1.}`, `{"t":1e}`, `{"t":tru}`, `{"t":"\x"}`, `{"t":"\ud800"}`,
		`{"t":{"a":[{"b":{}}],"c":[]}}`, `{"t":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`,
		"{\"k\":\"a\x01\"}", "{\"k\":\"\xff\"}", `{}`, `[]`, ``, `null`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want eventMeta
		wantErr := json.Unmarshal([]byte(s), &want)
		got, err := decodeMeta(s)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeMeta(%q): error %v, encoding/json's %v", s, err, wantErr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decodeMeta(%q) (-encoding/json +decodeMeta):\n%s", s, diff)
		}
	})
}

// BenchmarkDecodeMeta: the meta of an event as the relay reads it for each
// delivery, by decodeMeta and by encoding/json.
func BenchmarkDecodeMeta(b *testing.B) {
	tr := &store.EventTrace{Verify: store.VerifyTrace{Scheme: "hmac", Secret: 1}, KeySource: store.KeyFromExpression,
		Rules: []store.RuleTrace{{Rule: "route", Result: store.RuleMatched, Fields: []store.FieldTrace{{Field: "body.route", Value: `"fast"`, Wanted: []string{`== "fast"`}}}}}}
	meta, err := encodeMeta(eventMeta{Key: "0a1b2c3d4e5f", Trace: tr, Headers: map[string]string{
		"accept-encoding": "gzip", "content-length": "1024", "content-type": "application/json", "user-agent": "Go-http-client/1.1",
		"x-signature": "5d41402abc4b2a76b9719d911017c592aaf0e0b3b6e5c4a2e1d0f9e8d7c6b5a4", "x-request-id": "req_01HZX3K9"}})
	if err != nil {
		b.Fatal(err)
	}
	stored := string(meta)
	b.Run("decodeMeta", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeMeta(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var m eventMeta
			if err := json.Unmarshal(meta, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestBodiesCompressed: with each codec, a body that compresses well is
// stored compressed and read back byte for byte, through Event and Lease; a
// small or incompressible one is stored as it is; a compressed body whose
// structure is damaged is an error, not a wrong body.
func TestBodiesCompressed(t *testing.T) {
	for _, c := range []struct {
		name  string
		codec codec
		flag  string
	}{{"zstd", codecZstd, "z"}, {"s2", codecS2, "c"}} {
		t.Run(c.name, func(t *testing.T) { testBodiesCompressed(t, c.codec, c.flag) })
	}
}

func testBodiesCompressed(t *testing.T, c codec, flag string) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	s.codec = c
	defer s.Close()
	random := make([]byte, 2048)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	bodies := map[string]struct {
		body   []byte
		packed bool
	}{
		"json":   {[]byte(`{"items":[` + strings.Repeat(`{"sku":"RIESLING-2019","qty":6,"price":"18.50"},`, 60) + `{}]}`), true},
		"small":  {[]byte(`{"id":1}`), false},
		"random": {random, false},
	}
	for name, tt := range bodies {
		at := base.Add(time.Duration(len(name)) * time.Second)
		e := store.Event{ID: store.NewID("evt", at), Hook: "orders", ReceivedAt: at, Body: tt.body}
		d := store.Delivery{ID: store.NewID("dlv", at), Rule: "r", Action: "crm-" + name, NextAttemptAt: at}
		if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
			t.Fatal(err)
		}
		raw, err := s.c.Get(ctx, s.k.event(e.ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(raw, "\n")
		if packed := strings.Contains(head, flag+"|"); packed != tt.packed {
			t.Errorf("%s: head %q: compressed = %v, want %v", name, head, packed, tt.packed)
		}
		if tt.packed && len(raw) > len(tt.body)/2 {
			t.Errorf("%s: stored %d bytes for a body of %d", name, len(raw), len(tt.body))
		}
		got, err := s.Event(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Body, tt.body) {
			t.Errorf("%s: Event body differs from the one accepted", name)
		}
		b, err := s.Lease(ctx, store.LeaseRequest{Now: at, TTL: time.Minute, Actions: []store.ActionQuota{{Action: d.Action, N: 1}}})
		if err != nil || len(b.Leases) != 1 {
			t.Fatalf("%s: Lease = %v, %v", name, b.Leases, err)
		}
		if !bytes.Equal(b.Leases[0].Event.Body, tt.body) {
			t.Errorf("%s: leased event's body differs from the one accepted", name)
		}
		if tt.packed {
			// Damage the compressed body's frame (zstd) or its length
			// (S2): reads fail rather than show a wrong one.
			i := strings.Index(raw, "\n") + 1
			i += strings.Index(raw[i:], "\n") + 1
			at := i + 4
			if c == codecS2 {
				at = i
			}
			damaged := raw[:at] + "\xff\xff\xff\x0f" + raw[at+4:]
			if err := s.c.Set(ctx, s.k.event(e.ID), damaged, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Event(ctx, e.ID); err == nil {
				t.Errorf("%s: Event of a damaged compressed body: no error", name)
			}
		}
	}
}

// A body compressed with S2 and sealed is flagged y, opens whole, and
// keeps its compression when sealed anew.
func TestSealedS2(t *testing.T) {
	keys := storetest.SealKeys(t)
	body := []byte(`{"items":[` + strings.Repeat(`{"sku":"RIESLING-2019","qty":6},`, 40) + `{}]}`)
	e := store.Event{ID: "evt_1", Hook: "orders", Status: store.EventIgnored, ReceivedAt: base, Body: body}
	v, err := encodeEvent(e, packer{codec: codecS2}, keys)
	if err != nil {
		t.Fatal(err)
	}
	p, err := splitEvent(e.ID, v)
	if err != nil || p.flag != "y" || strings.Contains(v, "RIESLING") {
		t.Fatalf("stored %q: flag %q, %v", v, p.flag, err)
	}
	got, _, err := decodeEvent(opener{keys: keys}, e.ID, v, true)
	if err != nil || !bytes.Equal(got.Body, body) {
		t.Fatalf("read back %q, %v", got.Body, err)
	}
	again, err := resealed(keys, e.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := splitEvent(e.ID, "i"+again)
	if err != nil || q.flag != "y" {
		t.Fatalf("sealed anew: flag %q, %v", q.flag, err)
	}
	if b, err := openBody(opener{keys: keys}, e.ID, q.body, q.flag); err != nil || !bytes.Equal(b, body) {
		t.Errorf("sealed anew, read back %q, %v", b, err)
	}
}

// An event's trace is kept in its meta, whether the meta is written by
// hand or, for text that is not valid UTF-8, through encoding/json.
func TestEventTraceInMeta(t *testing.T) {
	tr := &store.EventTrace{Verify: store.VerifyTrace{Scheme: "github", Secret: 2}, KeySource: store.KeyFromBody,
		Rules: []store.RuleTrace{{Rule: "r", Result: store.RuleMatched, Fields: []store.FieldTrace{{Field: "body.a", Value: "1"}}}}}
	for name, header := range map[string]string{"valid": "text/plain", "not utf-8": "caf\xe9"} {
		e := store.Event{ID: "evt_1", Hook: "h", Status: store.EventIgnored, ReceivedAt: time.UnixMilli(1700000000000),
			Headers: map[string]string{"x-h": header}, Body: []byte(`{"a":1}`), Trace: tr}
		v, err := encodeEvent(e, packer{codec: codecNone}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeTrace(nil, "evt_1", v)
		if err != nil {
			t.Fatalf("%s: decodeTrace: %v", name, err)
		}
		if diff := cmp.Diff(tr, got); diff != "" {
			t.Errorf("%s: trace (-want +got):\n%s", name, diff)
		}
		back, _, err := decodeEvent(opener{}, "evt_1", v, true)
		if err != nil || string(back.Body) != `{"a":1}` {
			t.Errorf("%s: decodeEvent = %+v, %v", name, back, err)
		}
	}
}

// TestNewDeliveryHash: a new delivery's hash holds its fields and leaves
// out those still at their zero value, whether it came with its event
// (Accept) or later (AddDeliveries), in a lane or not, next to one that is
// or is not.
func TestNewDeliveryHash(t *testing.T) {
	ctx := t.Context()
	s := New(redistest.Client(t), redistest.Prefix(t))
	defer s.Close()
	at := base
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	e := store.Event{ID: store.NewID("evt", at), Hook: "orders", ReceivedAt: at, Body: []byte(`{}`), MatchedRules: []string{"r1", "r2"}}
	free := store.Delivery{ID: store.NewDeliveryID(e.ID, at), Rule: "r1", Action: "crm", NextAttemptAt: at.Add(time.Second)}
	laned := store.Delivery{ID: store.NewDeliveryID(e.ID, at), Rule: "r2", Action: "erp", Lane: "order-7"}
	if _, err := s.Accept(ctx, store.Accept{Event: e, Deliveries: []store.Delivery{free, laned}}); err != nil {
		t.Fatal(err)
	}
	later := at.Add(time.Minute)
	added := store.Delivery{ID: store.NewDeliveryID(e.ID, later), Hook: "orders", Rule: "replay", Action: "crm",
		Lane: "order-8", CreatedAt: at, UpdatedAt: later, NextAttemptAt: later, LastError: "replayed by hand"}
	if err := s.AddDeliveries(ctx, e.ID, []string{"replay"}, []store.Delivery{added}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		free.ID: {"evt": e.ID, "hook": "orders", "rule": "r1", "action": "crm", "status": "pending",
			"due": ms(at.Add(time.Second)), "created": ms(at)},
		laned.ID: {"evt": e.ID, "hook": "orders", "rule": "r2", "action": "erp", "status": "pending",
			"due": ms(at), "created": ms(at), "lane": "order-7"},
		added.ID: {"evt": e.ID, "hook": "orders", "rule": "replay", "action": "crm", "status": "pending",
			"due": ms(later), "created": ms(at), "updated": ms(later), "err": "replayed by hand", "lane": "order-8"},
	}
	for id, fields := range want {
		got, err := s.c.HGetAll(ctx, s.k.delivery(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fields, got); diff != "" {
			t.Errorf("delivery %s's hash (-want +got):\n%s", id, diff)
		}
	}
}
