package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/dict"

	"github.com/hookrelay/hookrelay/internal/redistest"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/storetest"
)

// openDict opens a store on url that trains its dictionary on want bodies.
func openDict(t *testing.T, url string, want int) *Store {
	t.Helper()
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.codec != codecDict {
		t.Fatalf("a store opened without compress= compresses with codec %d, want the dictionary", s.codec)
	}
	s.dict.want = want
	return s
}

// trainedStore opens a store under a prefix of the test's own that has
// trained its dictionary on n payments, and returns it, the dictionary
// and the store's URL.
func trainedStore(t *testing.T, n int) (*Store, *bodyDict, string) {
	t.Helper()
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	s := openDict(t, url, n)
	acceptBodies(t, s, base, payments(0, n)...)
	s.dict.training.Wait()
	d := s.dict.use.Load()
	if d == nil {
		t.Fatalf("no dictionary after %d payments", n)
	}
	return s, d, url
}

// acceptBodies accepts one event per body, each with a delivery, at
// times after at, and returns their ids.
func acceptBodies(t *testing.T, s *Store, at time.Time, bodies ...[]byte) []string {
	t.Helper()
	var ids []string
	for i, b := range bodies {
		now := at.Add(time.Duration(i) * time.Millisecond)
		e := store.Event{ID: store.NewID("evt", now), Hook: "orders", ReceivedAt: now, Body: b}
		d := store.Delivery{ID: store.NewDeliveryID(e.ID, now), Rule: "r", Action: "crm", NextAttemptAt: now}
		if _, err := s.Accept(t.Context(), store.Accept{Event: e, Deliveries: []store.Delivery{d}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// storedFlag is the compression flag of event id as stored.
func storedFlag(t *testing.T, s *Store, id string) (flag string, size int) {
	t.Helper()
	v, err := s.c.Get(t.Context(), s.at(id).event(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	p, err := splitEvent(id, v)
	if err != nil {
		t.Fatal(err)
	}
	return p.flag, len(p.body)
}

func payments(from, n int) [][]byte {
	var bs [][]byte
	for i := range n {
		bs = append(bs, storetest.PaymentBody(from+i))
	}
	return bs
}

// TestDictTrainedFromBodies: a store compresses with zstd until it has
// seen enough bodies, then with the dictionary it trained from them, which
// the store keeps for every process: one opened afterwards uses it from
// the start, one opened before reads the bodies compressed with it and,
// training its own, takes the store's instead. Every body reads back whole,
// through Event and Lease, and the dictionary keeps less of it than zstd.
func TestDictTrainedFromBodies(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		testDictTrainedFromBodies(t, redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t)))
	})
	t.Run("cluster", func(t *testing.T) {
		testDictTrainedFromBodies(t, redistest.WithPrefix(redistest.ClusterURL(t), redistest.ClusterPrefix(t)))
	})
}

func testDictTrainedFromBodies(t *testing.T, url string) {
	ctx := t.Context()
	early := openDict(t, url, 40)
	s := openDict(t, url, 40)

	before := acceptBodies(t, s, base, payments(0, 40)...)
	s.dict.training.Wait()
	d := s.dict.use.Load()
	if d == nil {
		t.Fatal("no dictionary after the samples wanted")
	}
	if cur, err := s.c.HGet(ctx, s.dictKey(), "current").Result(); err != nil || cur != d.id {
		t.Fatalf("the store's dictionary: %q, %v; want %q", cur, err, d.id)
	}
	after := acceptBodies(t, s, base.Add(time.Minute), payments(1000, 20)...)

	for _, id := range before {
		if f, _ := storedFlag(t, s, id); f != "z" {
			t.Fatalf("event %s accepted before the dictionary: flag %q, want z", id, f)
		}
	}
	for i, id := range after {
		f, n := storedFlag(t, s, id)
		if f != "d" {
			t.Fatalf("event %s accepted with the dictionary: flag %q, want d", id, f)
		}
		body := storetest.PaymentBody(1000 + i)
		if z := len(bodyEncoder.EncodeAll(body, nil)); n >= z {
			t.Errorf("event %s: %d bytes stored with the dictionary, zstd alone %d", id, n, z)
		}
	}

	later := openDict(t, url, 40)
	if got := later.dict.use.Load(); got == nil || got.id != d.id {
		t.Fatalf("a store opened later uses %v, want the store's dictionary %s", got, d.id)
	}
	for _, r := range []*Store{s, later, early} {
		for i, id := range append(before, after...) {
			want := storetest.PaymentBody(i)
			if i >= len(before) {
				want = storetest.PaymentBody(1000 + i - len(before))
			}
			e, err := r.Event(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Body, want) {
				t.Fatalf("event %s read back differs from the body accepted", id)
			}
		}
	}
	var leases []store.Lease
	for range 20 {
		b, err := early.Lease(ctx, store.LeaseRequest{Now: base.Add(time.Hour), TTL: time.Minute,
			Actions: []store.ActionQuota{{Action: "crm", N: 100}}})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, b.Leases...)
	}
	if len(leases) != len(before)+len(after) {
		t.Fatalf("leased %d deliveries, want %d", len(leases), len(before)+len(after))
	}
	for _, l := range leases {
		if l.Err != nil || !bytes.Contains(l.Event.Body, []byte(`"object":"payment_intent"`)) {
			t.Fatalf("leased event %s: %v, body %.40q", l.Event.ID, l.Err, l.Event.Body)
		}
	}

	// The early store trains a dictionary of its own, and takes the store's.
	acceptBodies(t, early, base.Add(2*time.Minute), payments(5000, 40)...)
	early.dict.training.Wait()
	if got := early.dict.use.Load(); got == nil || got.id != d.id {
		t.Fatalf("a store that trained after another uses %v, want the store's dictionary %s", got, d.id)
	}
	if n, err := s.c.HLen(ctx, s.dictKey()).Result(); err != nil || n != 2 {
		t.Errorf("the dicts hash holds %d fields, %v; want current and one dictionary", n, err)
	}
}

// TestDictMissing: a body compressed with a dictionary the store does not
// hold is an error that names it, not a wrong body, and a store whose
// dictionary is gone still takes events.
func TestDictMissing(t *testing.T) {
	ctx := t.Context()
	s, d, url := trainedStore(t, 30)
	id := acceptBodies(t, s, base.Add(time.Minute), storetest.PaymentBody(99))[0]
	if err := s.c.HDel(ctx, s.dictKey(), d.id, "current").Err(); err != nil {
		t.Fatal(err)
	}
	fresh := openDict(t, url, 30)
	_, err := fresh.Event(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "dictionary "+d.id) {
		t.Fatalf("Event of a body whose dictionary is gone: %v", err)
	}

	// A store whose dictionary is named but gone opens, and stores new
	// bodies with zstd.
	if err := s.c.HSet(ctx, s.dictKey(), "current", d.id).Err(); err != nil {
		t.Fatal(err)
	}
	broken := openDict(t, url, 30)
	id = acceptBodies(t, broken, base.Add(2*time.Minute), storetest.PaymentBody(100))[0]
	if f, _ := storedFlag(t, broken, id); f != "z" {
		t.Fatalf("a store whose dictionary is gone stored flag %q, want z", f)
	}
	if e, err := broken.Event(ctx, id); err != nil || !bytes.Equal(e.Body, storetest.PaymentBody(100)) {
		t.Fatalf("read back: %v", err)
	}
}

// skewed is n random bytes of four letters: zstd's entropy coding packs
// them into about a quarter of their size, S2 with or without a dictionary
// of JSON hardly at all.
func skewed(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "ACGT"[r.IntN(4)]
	}
	return b
}

// TestDictFallsBackToZstd: a body the dictionary does not fit is kept
// compressed with zstd when that is smaller, and bodies a dictionary would
// keep larger than zstd train none.
func TestDictFallsBackToZstd(t *testing.T) {
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	s := openDict(t, url, 30)
	var odd [][]byte
	for range 30 {
		odd = append(odd, skewed(r, 2048))
	}
	if err := s.train(odd); err == nil || s.dict.use.Load() != nil {
		t.Fatalf("a dictionary of bodies zstd packs better: train = %v, in use %v", err, s.dict.use.Load())
	}
	if n, _ := s.c.Exists(ctx, s.dictKey()).Result(); n != 0 {
		t.Fatal("a dictionary worse than zstd was stored")
	}

	acceptBodies(t, s, base, payments(0, 30)...)
	s.dict.training.Wait()
	if s.dict.use.Load() == nil {
		t.Fatal("no dictionary")
	}
	body := skewed(r, 2048)
	id := acceptBodies(t, s, base.Add(time.Minute), body)[0]
	if f, n := storedFlag(t, s, id); f != "z" || n > len(body)/2 {
		t.Fatalf("a body the dictionary does not fit: flag %q, %d bytes of %d; want zstd", f, n, len(body))
	}
	if e, err := s.Event(ctx, id); err != nil || !bytes.Equal(e.Body, body) {
		t.Fatalf("read back: %v", err)
	}
}

// TestSealedStoreTrainsNoDictionary: a dictionary would keep fragments of
// sealed bodies in clear, so a store with keys compresses with zstd.
func TestSealedStoreTrainsNoDictionary(t *testing.T) {
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	s, err := Open(t.Context(), url, WithKeys(storetest.SealKeys(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.dict.want = 10
	ids := acceptBodies(t, s, base, payments(0, 20)...)
	s.dict.training.Wait()
	if s.codec != codecZstd || s.dict.use.Load() != nil {
		t.Fatalf("a sealed store compresses with codec %d, dictionary %v", s.codec, s.dict.use.Load())
	}
	if f, _ := storedFlag(t, s, ids[19]); f != "x" {
		t.Fatalf("flag %q, want x (zstd, sealed)", f)
	}
	if n, _ := s.c.Exists(context.Background(), s.dictKey()).Result(); n != 0 {
		t.Fatal("a sealed store stored a dictionary")
	}
}

// TestDictTrainedAgainWhenNotStored: a dictionary that Redis did not take
// leaves the store on zstd and sampling, and the next bodies train one.
func TestDictTrainedAgainWhenNotStored(t *testing.T) {
	ctx := t.Context()
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	s := openDict(t, url, 20)
	// A string where the hash should be: HSETNX fails with WRONGTYPE.
	if err := s.c.Set(ctx, s.dictKey(), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	acceptBodies(t, s, base, payments(0, 20)...)
	s.dict.training.Wait()
	if s.dict.use.Load() != nil || !s.dict.sampling.Load() {
		t.Fatalf("after a failed store: dictionary %v, sampling %v; want none, sampling", s.dict.use.Load(), s.dict.sampling.Load())
	}
	if err := s.c.Del(ctx, s.dictKey()).Err(); err != nil {
		t.Fatal(err)
	}
	acceptBodies(t, s, base.Add(time.Minute), payments(100, 20)...)
	s.dict.training.Wait()
	if s.dict.use.Load() == nil {
		t.Fatal("no dictionary after a second round of samples")
	}
}

// FuzzDictBodies: any body compressed with a dictionary reads back whole,
// the committers' repack stores what compressing at the accept would
// have, and a stored event damaged anywhere reads as an error or as some
// body, never a panic.
func FuzzDictBodies(f *testing.F) {
	var samples [][]byte
	for i := range 200 {
		samples = append(samples, storetest.PaymentBody(i))
	}
	b, err := dict.BuildS2Dict(samples, dict.Options{MaxDictSize: dictMaxSize, HashBytes: 8})
	if err != nil {
		f.Fatal(err)
	}
	d, err := newBodyDict(dictID(b), b)
	if err != nil {
		f.Fatal(err)
	}
	o := opener{dicts: func(id string) (*bodyDict, error) {
		if id != d.id {
			return nil, errors.New("unknown dictionary " + id)
		}
		return d, nil
	}}
	f.Add(storetest.PaymentBody(7), 60, byte(1))
	f.Add([]byte(`{"id":1}`), 0, byte(0x80))
	f.Add(bytes.Repeat([]byte("ACGT"), 300), 100, byte(7))
	f.Fuzz(func(t *testing.T, body []byte, at int, flip byte) {
		e := store.Event{ID: "evt_1", Hook: "h", Status: store.EventAccepted, ReceivedAt: base, Body: body, MatchedRules: []string{"r"}}
		v, err := encodeEvent(e, packer{codec: codecDict, dict: d}, nil, "dlv_1")
		if err != nil {
			t.Fatal(err)
		}
		// What a committer makes of the string an accept left uncompressed
		// is what compressing it at once would have stored.
		plain, err := encodeEvent(e, packer{codec: codecNone}, nil, "dlv_1")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := repack(plain, d); got != v {
			t.Fatalf("repacked:\n%q\nwant\n%q", got, v)
		}
		got, _, err := decodeEvent(o, e.ID, v, true)
		if err != nil || !bytes.Equal(got.Body, body) {
			t.Fatalf("read back %d bytes of %d, %v", len(got.Body), len(body), err)
		}
		damaged := []byte(v)
		damaged[uint(at)%uint(len(damaged))] ^= flip | 1
		_, _, _ = decodeEvent(o, e.ID, string(damaged), true)
	})
}

// shipments are bodies of another sender than payments: long field names
// and constant strings that each body holds once, which a dictionary
// trained on payments does not hold and one trained on shipments does.
func shipments(from, n int) [][]byte {
	var bs [][]byte
	for i := from; i < from+n; i++ {
		r := rand.New(rand.NewPCG(uint64(i), 7))
		var b strings.Builder
		b.WriteString(`{"shipmentNotificationEnvelope":{"carrierIntegrationIdentifier":"northwind-freight-consolidated-ltl",`)
		fmt.Fprintf(&b, `"consignmentTrackingReference":"NWF%010d","originDistributionCentreDesignation":"warehouse-rotterdam-maasvlakte-terminal-04",`, r.Uint32())
		fmt.Fprintf(&b, `"destinationDistributionCentreDesignation":"warehouse-antwerp-noorderlaan-crossdock-11","estimatedArrivalWindowStart":"2026-12-%02dT0%d:00:00Z",`, 1+r.IntN(28), r.IntN(10))
		b.WriteString(`"hazardousMaterialsDeclarationStatus":"not-applicable-general-cargo","customsClearanceProcessingStage":"pre-arrival-electronic-declaration-lodged",`)
		b.WriteString(`"temperatureControlledHandlingRequirement":"ambient-fifteen-to-twenty-five-celsius","palletisedUnitLoadConfiguration":[`)
		for j := range 3 + r.IntN(3) {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"serialShippingContainerCode":"%018d","grossWeightKilograms":%d,"stackabilityClassification":"double-stackable-reinforced-base"}`, r.Uint64()%1e18, 100+r.IntN(900))
		}
		b.WriteString(`],"proofOfDeliverySignatureRequirement":"recipient-signature-mandatory-on-handover"}}`)
		bs = append(bs, []byte(b.String()))
	}
	return bs
}

// TestDictTrainedAgainWhenBodiesChange: once most of a window's bodies
// are of a sender the dictionary was not trained on, the store samples
// the next ones and trains again; the new dictionary becomes the store's,
// new bodies are compressed with it, and every body stored before, with
// the old dictionary or with zstd, still reads back whole, also through a
// process opened before that never trained.
func TestDictTrainedAgainWhenBodiesChange(t *testing.T) {
	ctx := t.Context()
	url := redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t))
	s := openDict(t, url, 50)
	s.dict.window, s.dict.every = 40, time.Nanosecond
	ids := acceptBodies(t, s, base, payments(0, 50)...)
	s.dict.training.Wait()
	first := s.dict.use.Load()
	if first == nil {
		t.Fatal("no dictionary after 50 payments")
	}
	o := openDict(t, url, 50) // opened with the first dictionary
	if o.dict.use.Load() == nil || o.dict.use.Load().id != first.id {
		t.Fatalf("a process opened after the training does not use %s", first.id)
	}

	// Shipments: the payments' dictionary does not fit them.
	late := base.Add(time.Minute)
	missedIDs := acceptBodies(t, s, late, shipments(0, 40)...)
	if flag, _ := storedFlag(t, s, missedIDs[0]); flag == "d" {
		t.Fatalf("a shipment compressed with the payments' dictionary (flag %q): the test needs bodies it does not fit", flag)
	}
	s.dict.training.Wait() // refit
	if !s.dict.sampling.Load() {
		t.Fatal("after a window of bodies the dictionary did not fit, the store does not sample")
	}
	sampled := acceptBodies(t, s, late.Add(time.Minute), shipments(100, 50)...)
	s.dict.training.Wait()
	second := s.dict.use.Load()
	if second == nil || second.id == first.id {
		t.Fatalf("after training on shipments the store uses %v, want a dictionary other than %s", second, first.id)
	}
	if cur, err := s.c.HGet(ctx, s.dictKey(), "current").Result(); err != nil || cur != second.id {
		t.Fatalf("the store's dictionary is %q (%v), want %s", cur, err, second.id)
	}
	after := acceptBodies(t, s, late.Add(2*time.Minute), shipments(200, 5)...)
	flag, size := storedFlag(t, s, after[0])
	if flag != "d" || size > len(shipments(200, 1)[0])*5/8 {
		t.Errorf("a shipment after the new training: flag %q, %d bytes of %d; want it compressed with the new dictionary to 5/8 or less", flag, size, len(shipments(200, 1)[0]))
	}

	// The process opened before, whose dictionary misses its shipments
	// too, takes the store's new one without training, though it may not
	// train for an hour.
	o.dict.window, o.dict.every = 40, time.Hour
	viaOther := acceptBodies(t, o, late.Add(3*time.Minute), shipments(300, 40)...)
	o.dict.training.Wait()
	if got := o.dict.use.Load(); got.id != second.id || o.dict.sampling.Load() {
		t.Errorf("the other process uses %s (sampling %v) after a window its dictionary missed, want the store's %s without sampling", got.id, o.dict.sampling.Load(), second.id)
	}

	bodies := append(append(append(append(payments(0, 50), shipments(0, 40)...), shipments(100, 50)...), shipments(200, 5)...), shipments(300, 40)...)
	for i, id := range append(append(append(append(ids, missedIDs...), sampled...), after...), viaOther...) {
		for _, r := range []*Store{s, o} {
			e, err := r.Event(ctx, id)
			if err != nil {
				t.Fatalf("Event %s: %v", id, err)
			}
			if !bytes.Equal(e.Body, bodies[i]) {
				t.Fatalf("event %s reads back %q, want %q", id, e.Body, bodies[i])
			}
		}
	}
}

// TestDictKeptUnlessBetter: trained again on bodies its dictionary fits,
// a store keeps it; a process whose store took another dictionary
// meanwhile takes the store's rather than replace it.
func TestDictKeptUnlessBetter(t *testing.T) {
	ctx := t.Context()
	s, first, url := trainedStore(t, 50)
	if err := s.train(payments(500, 50)); !errors.Is(err, errDictNoBetter) {
		t.Fatalf("training again on payments: %v, want %v", err, errDictNoBetter)
	}
	if got := s.dict.use.Load(); got.id != first.id {
		t.Fatalf("after a training no better the store uses %s, want %s", got.id, first.id)
	}

	o := openDict(t, url, 50) // uses first too
	if err := s.train(shipments(0, 50)); err != nil {
		t.Fatalf("training on shipments: %v", err)
	}
	second := s.dict.use.Load()
	if err := o.train(shipments(1000, 50)); err != nil {
		t.Fatalf("the other process's training: %v", err)
	}
	if got := o.dict.use.Load(); got.id != second.id {
		t.Errorf("the other process uses %s after its training, want the store's %s", got.id, second.id)
	}
	if cur, err := s.c.HGet(ctx, s.dictKey(), "current").Result(); err != nil || cur != second.id {
		t.Errorf("the store's dictionary is %q (%v), want %s", cur, err, second.id)
	}
}

// TestDictSamplesNothingOnceClosed: an accept that is still running when
// the store closes keeps no sample and starts no training, which Close
// would no longer wait for.
func TestDictSamplesNothingOnceClosed(t *testing.T) {
	s := openDict(t, redistest.WithPrefix(redistest.URL(t), redistest.Prefix(t)), 3)
	if !s.dict.sampling.Load() {
		t.Fatal("a new store does not sample")
	}
	s.sample(payments(0, 1)[0])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, b := range payments(1, 5) {
		s.sample(b)
	}
	s.dict.mu.Lock()
	defer s.dict.mu.Unlock()
	if len(s.dict.samples) != 1 {
		t.Errorf("after Close the store holds %d samples, want the 1 taken before", len(s.dict.samples))
	}
}
