package gateway_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/sqlitestore"
	"github.com/hookrelay/hookrelay/verify"
)

// sigNow is the gateway's clock in the signature tests.
var sigNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// sigScheme is how one sender signs. It is written out from the sender's
// own documentation, not taken from the verify package, so that a verifier
// that strays from what senders really send fails here.
type sigScheme struct {
	hook      string // its hook in testdata/signatures.yaml
	scheme    string
	current   string        // the hook's first secret
	previous  string        // its second secret
	env       string        // the environment variable the config reads previous from
	stranger  string        // a secret the hook never had
	base64    bool          // the MAC is written in padded standard base64, else in lower-case hex
	tolerance time.Duration // how far a timestamp may be from now; 0 for a scheme without one
	sigHeader string        // the header carrying the MAC
	tsHeader  string        // the header carrying the timestamp, when it has one of its own
	idHeader  string        // the header carrying the sender's delivery id, if any
	key       func(secret string) []byte
	mac       func(key []byte, id, ts string, body []byte) []byte // over the documented signed string
	value     func(sig, ts string) string                         // the signature header for an encoded MAC
}

var sigSchemes = []sigScheme{
	{
		hook: "github", scheme: verify.SchemeGitHub,
		current: "gh-Kq7vX2mN9pL4", previous: "gh-Ab3Cd5Ef7Gh9", env: "GITHUB_PREVIOUS", stranger: "gh-Zz0Yy9Xx8Ww7",
		sigHeader: "X-Hub-Signature-256", idHeader: "X-GitHub-Delivery",
		key: rawKey, mac: bodyMAC(sha256.New), value: prefixed("sha256="),
	},
	{
		// The whole whsec_ string is Stripe's key: it is not decoded.
		hook: "stripe", scheme: verify.SchemeStripe,
		current: "whsec_St4Rp9cQ2wLx", previous: "whsec_Pv8Tk2Lm6Nq0", env: "STRIPE_PREVIOUS", stranger: "whsec_Un1Kn0Wn2Xy3",
		tolerance: 5 * time.Minute, sigHeader: "Stripe-Signature",
		key: rawKey,
		mac: func(key []byte, _, ts string, body []byte) []byte {
			return hmacOf(sha256.New, key, []byte(ts+"."), body)
		},
		value: func(sig, ts string) string { return "t=" + ts + ",v1=" + sig },
	},
	{
		hook: "shopify", scheme: verify.SchemeShopify,
		current: "shpss_Hy6Tb3Mz8Vr1", previous: "shpss_Ga5Fe4Dc3Ba2", env: "SHOPIFY_PREVIOUS", stranger: "shpss_Qq1Rr2Ss3Tt4",
		base64: true, sigHeader: "X-Shopify-Hmac-Sha256", idHeader: "X-Shopify-Webhook-Id",
		key: rawKey, mac: bodyMAC(sha256.New), value: prefixed(""),
	},
	{
		hook: "slack", scheme: verify.SchemeSlack,
		current: "sl-Pc5Nw8Gd2Yk7", previous: "sl-Mx4Vb6Nc8Lk1", env: "SLACK_PREVIOUS", stranger: "sl-Oo9Ii8Uu7Yy6",
		tolerance: 2 * time.Minute, sigHeader: "X-Slack-Signature", tsHeader: "X-Slack-Request-Timestamp",
		key: rawKey,
		mac: func(key []byte, _, ts string, body []byte) []byte {
			return hmacOf(sha256.New, key, []byte("v0:"+ts+":"), body)
		},
		value: prefixed("v0="),
	},
	{
		// whsec_ then the base64 of the key; the signed string is id.timestamp.body.
		hook: "standard", scheme: verify.SchemeStandardWebhooks,
		current:  "whsec_c3ctY3VycmVudC1rZXktUjhkUTJ2VG4=",
		previous: "whsec_" + base64.StdEncoding.EncodeToString([]byte("sw-previous-key-J3kW7yHs")), env: "STANDARD_PREVIOUS",
		stranger:  "whsec_" + base64.StdEncoding.EncodeToString([]byte("sw-stranger-key-Q5eR7tY9")),
		base64:    true,
		tolerance: 10 * time.Minute, sigHeader: "Webhook-Signature", tsHeader: "Webhook-Timestamp", idHeader: "Webhook-Id",
		key: func(secret string) []byte {
			k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			if err != nil || len(k) == 0 {
				panic(fmt.Sprintf("standard-webhooks secret %q is not whsec_<base64>", secret))
			}
			return k
		},
		mac: func(key []byte, id, ts string, body []byte) []byte {
			return hmacOf(sha256.New, key, []byte(id+"."+ts+"."), body)
		},
		value: prefixed("v1,"),
	},
	{
		hook: "oncloudwine", scheme: verify.SchemeOnCloudWine,
		current: "ocw-Zf4Lm1Xs6Qe9", previous: "ocw-Jh2Kg3Lf4Md5", env: "ONCLOUDWINE_PREVIOUS", stranger: "ocw-Aa1Ss2Dd3Ff4",
		sigHeader: "X-OnCloudWine-Signature",
		key:       rawKey, mac: bodyMAC(sha256.New), value: prefixed(""),
	},
	{
		hook: "ordercloud", scheme: verify.SchemeOrderCloud,
		current: "oc-Wb2Jr7Nk5Ut3", previous: "oc-Ep6Rq9Ws1Xz4", env: "ORDERCLOUD_PREVIOUS", stranger: "oc-Gg5Hh6Jj7Kk8",
		base64: true, sigHeader: "X-oc-hash",
		key: rawKey, mac: bodyMAC(sha256.New), value: prefixed(""),
	},
	{
		hook: "custom", scheme: verify.SchemeHMAC,
		current: "cu-Dv9Hq4Ca8Re2", previous: "cu-Tn3Ym5Ub7Io1", env: "CUSTOM_PREVIOUS", stranger: "cu-Ll2Kk3Jj4Hh5",
		base64: true, sigHeader: "X-Custom-Signature",
		key: rawKey, mac: bodyMAC(sha512.New), value: prefixed("sha512="),
	},
}

func rawKey(secret string) []byte { return []byte(secret) }

func hmacOf(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// bodyMAC is the MAC of schemes that sign the raw body alone.
func bodyMAC(h func() hash.Hash) func(key []byte, id, ts string, body []byte) []byte {
	return func(key []byte, _, _ string, body []byte) []byte { return hmacOf(h, key, body) }
}

func prefixed(p string) func(sig, ts string) string {
	return func(sig, _ string) string { return p + sig }
}

// encode writes a MAC the way the scheme's senders do.
func (s sigScheme) encode(mac []byte) string {
	if s.base64 {
		return base64.StdEncoding.EncodeToString(mac)
	}
	return hex.EncodeToString(mac)
}

// headers are what a sender signing body with secret at the instant at
// adds to its request, with the MAC written by encode.
func (s sigScheme) headers(secret string, at time.Time, id string, body []byte, encode func(sigScheme, []byte) string) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set(s.sigHeader, s.value(encode(s, s.mac(s.key(secret), id, ts, body)), ts))
	if s.tsHeader != "" {
		h.Set(s.tsHeader, ts)
	}
	if s.idHeader != "" {
		h.Set(s.idHeader, id)
	}
	return h
}

func (s sigScheme) timestamped() bool { return s.tolerance > 0 }

// sigCase is one request to every hook it applies to: a correctly signed
// one with at most one part changed.
type sigCase struct {
	name    string
	want    int                            // 202, or 401 for a refusal
	applies func(sigScheme) bool           // nil: every scheme
	secret  func(sigScheme) string         // the signing secret; nil: the hook's first
	skew    func(sigScheme) time.Duration  // the signing instant less now; nil: now
	signed  func([]byte) []byte            // the body the MAC covers; nil: the one prepared
	sent    func([]byte) []byte            // the body sent, from the one prepared; nil: the same
	encode  func(sigScheme, []byte) string // the MAC as written; nil: as the scheme writes it
	edit    func(sigScheme, http.Header)   // last change to the request's headers
	removed bool                           // sent after the second secret left the config
}

var sigCases = []sigCase{
	{name: "correct", want: http.StatusAccepted},
	{name: "second secret of a rotation", want: http.StatusAccepted,
		secret: func(s sigScheme) string { return s.previous }},
	{name: "timestamp as old as the tolerance", want: http.StatusAccepted, applies: sigScheme.timestamped,
		skew: func(s sigScheme) time.Duration { return -s.tolerance }},
	{name: "timestamp as far ahead as the tolerance", want: http.StatusAccepted, applies: sigScheme.timestamped,
		skew: func(s sigScheme) time.Duration { return s.tolerance }},

	{name: "missing signature header", want: http.StatusUnauthorized,
		edit: func(s sigScheme, h http.Header) { h.Del(s.sigHeader) }},
	{name: "empty signature header", want: http.StatusUnauthorized,
		edit: func(s sigScheme, h http.Header) { h.Set(s.sigHeader, "") }},
	{name: "missing timestamp header", want: http.StatusUnauthorized,
		applies: func(s sigScheme) bool { return s.tsHeader != "" },
		edit:    func(s sigScheme, h http.Header) { h.Del(s.tsHeader) }},
	{name: "truncated signature", want: http.StatusUnauthorized,
		encode: func(s sigScheme, mac []byte) string { e := s.encode(mac); return e[:len(e)/2] }},
	{name: "garbage signature", want: http.StatusUnauthorized,
		encode: func(sigScheme, []byte) string { return "garbage!!not-a-mac" }},
	{name: "wrong encoding", want: http.StatusUnauthorized,
		encode: func(s sigScheme, mac []byte) string {
			if s.base64 {
				return hex.EncodeToString(mac)
			}
			return base64.StdEncoding.EncodeToString(mac)
		}},
	{name: "one body byte flipped", want: http.StatusUnauthorized, sent: flipByte},
	{name: "MAC over re-serialized JSON", want: http.StatusUnauthorized, signed: reserialize},
	{name: "secret the hook never had", want: http.StatusUnauthorized,
		secret: func(s sigScheme) string { return s.stranger }},
	{name: "stale timestamp", want: http.StatusUnauthorized, applies: sigScheme.timestamped,
		skew: func(s sigScheme) time.Duration { return -s.tolerance - time.Second }},
	{name: "future timestamp", want: http.StatusUnauthorized, applies: sigScheme.timestamped,
		skew: func(s sigScheme) time.Duration { return s.tolerance + time.Second }},
	{name: "second secret after it was removed", want: http.StatusUnauthorized, removed: true,
		secret: func(s sigScheme) string { return s.previous }},
}

// flipByte changes one byte of the note, so that the body is still JSON a
// correctly signed request could carry.
func flipByte(body []byte) []byte {
	out := bytes.Clone(body)
	i := bytes.Index(out, []byte(`"note":"`)) + len(`"note":"`)
	out[i] ^= 0x20
	return out
}

// reserialize is the body as a sender that signed a parsed and re-encoded
// copy of it would have signed: the same JSON, other whitespace.
func reserialize(body []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// loadSignatureConfig loads testdata/signatures.yaml during a secret
// rotation (every hook has its previous secret too) or after it.
func loadSignatureConfig(t *testing.T, rotating bool) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/signatures.yaml", func(name string) (string, bool) {
		for _, s := range sigSchemes {
			if rotating && s.env == name {
				return s.previous, true
			}
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sigGateway is the ingress fixture with its gateway, to swap configs, and
// its SQLite store, to list what was stored.
type sigGateway struct {
	*ingress
	g  *gateway.Gateway
	db *sqlitestore.Store
}

func newSigGateway(t *testing.T, cfg *config.Config) *sigGateway {
	t.Helper()
	db, err := sqlitestore.Open(context.Background(), t.TempDir()+"/signatures.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := &recordingStore{Store: db}
	g := gateway.New(rec, cfg, gateway.Options{Now: func() time.Time { return sigNow }, Logger: slog.New(slog.DiscardHandler)})
	return &sigGateway{ingress: &ingress{cfg: cfg, h: g.Handler(), st: db, rec: rec}, g: g, db: db}
}

// post sends body to the hook with exactly the headers h (and a JSON
// content type).
func (gw *sigGateway) post(t *testing.T, s sigScheme, body []byte, h http.Header) *httptest.ResponseRecorder {
	t.Helper()
	return gw.send(t, s.hook, req{body: body, unsigned: true, header: h})
}

// stored checks that w is a 202 for a new event, stored with body and one
// delivery, and that it is the only event stored since there were before.
func (gw *sigGateway) stored(t *testing.T, s sigScheme, w *httptest.ResponseRecorder, before int, body []byte) {
	t.Helper()
	if w.Code != http.StatusAccepted {
		t.Fatalf("status = %d %s, want 202 (200 means an earlier request with this body was stored)", w.Code, w.Body)
	}
	if n := gw.rec.count() - before; n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	id := w.Header().Get("Hookrelay-Event-Id")
	ev, err := gw.st.Event(context.Background(), id)
	if err != nil {
		t.Fatalf("event %q: %v", id, err)
	}
	if ev.Hook != s.hook || !bytes.Equal(ev.Body, body) || ev.Status != store.EventAccepted {
		t.Errorf("stored event = hook %s, status %s, body %s; want hook %s, accepted, body %s", ev.Hook, ev.Status, ev.Body, s.hook, body)
	}
	if ds, err := gw.st.Deliveries(context.Background(), id); err != nil || len(ds) != 1 {
		t.Errorf("deliveries = %+v, %v; want one", ds, err)
	}
}

// refusal checks that w is a 401 carrying only a JSON error that shows
// neither a secret of the hook nor any MAC it would accept for body, and
// that nothing was stored since there were before.
func (gw *sigGateway) refusal(t *testing.T, s sigScheme, w *httptest.ResponseRecorder, before int, id string, at time.Time, body []byte) {
	t.Helper()
	if n := gw.rec.count() - before; n != 0 {
		t.Errorf("%d events stored for a refused request", n)
	}
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d %s, want 401", w.Code, w.Body)
	}
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out) != 1 {
		t.Errorf("answer = %s, want {\"error\": ...}", w.Body)
	} else if msg, _ := out["error"].(string); msg == "" {
		t.Errorf("answer = %s, want {\"error\": ...}", w.Body)
	}
	if id := w.Header().Get("Hookrelay-Event-Id"); id != "" {
		t.Errorf("refusal names event %s", id)
	}

	var answer strings.Builder
	answer.Write(w.Body.Bytes())
	for k, vs := range w.Header() {
		answer.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
	}
	got := answer.String()
	var secrets []string
	for _, secret := range []string{s.current, s.previous} {
		key := s.key(secret)
		secrets = append(secrets, secret, hex.EncodeToString(key))
		for _, ts := range []time.Time{at, sigNow} {
			mac := s.mac(key, id, strconv.FormatInt(ts.Unix(), 10), body)
			secrets = append(secrets, hex.EncodeToString(mac), base64.StdEncoding.EncodeToString(mac), base64.RawURLEncoding.EncodeToString(mac))
		}
	}
	for _, v := range secrets {
		for i := 0; i+8 <= len(v); i++ {
			if run := v[i : i+8]; strings.Contains(got, run) {
				t.Errorf("answer shows %q, part of a secret or expected MAC:\n%s", run, got)
				break
			}
		}
	}
}

// TestSignatures sends, for every verify scheme, correctly signed requests
// and requests with one part wrong through the whole gateway. A refusal is
// a 401 that stores nothing: the same body correctly signed afterwards is
// stored as a new event, not a duplicate.
func TestSignatures(t *testing.T) {
	rotating := loadSignatureConfig(t, true)
	rotated := loadSignatureConfig(t, false)

	covered := map[string]bool{verify.SchemeNone: true}
	for _, s := range sigSchemes {
		covered[s.scheme] = true
		if got := rotating.Hooks[s.hook].Verifier.Scheme(); got != s.scheme {
			t.Fatalf("hook %s verifies %s, want %s", s.hook, got, s.scheme)
		}
	}
	for _, name := range verify.Schemes() {
		if !covered[name] {
			t.Errorf("no hook in testdata/signatures.yaml tests scheme %s", name)
		}
	}

	for _, s := range sigSchemes {
		t.Run(s.hook, func(t *testing.T) {
			t.Parallel()
			gw := newSigGateway(t, rotating)
			for i, c := range sigCases {
				if c.applies != nil && !c.applies(s) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					body := []byte(fmt.Sprintf(`{"id":"evt_%s_%02d","type":"ping","note":"signed by the sender"}`, s.hook, i))
					id := fmt.Sprintf("%s-delivery-%02d", s.hook, i)
					if c.removed {
						// The second secret passes while the rotation lasts…
						probe := []byte(fmt.Sprintf(`{"id":"evt_%s_%02d_before","type":"ping","note":"still rotating"}`, s.hook, i))
						before := gw.rec.count()
						w := gw.post(t, s, probe, s.headers(s.previous, sigNow, id+"-before", probe, sigScheme.encode))
						gw.stored(t, s, w, before, probe)
						// …and no more once the config without it is in force.
						gw.g.SetConfig(rotated)
						defer gw.g.SetConfig(rotating)
					}
					secret, at := s.current, sigNow
					if c.secret != nil {
						secret = c.secret(s)
					}
					if c.skew != nil {
						at = at.Add(c.skew(s))
					}
					sent := body
					if c.sent != nil {
						sent = c.sent(body)
					}
					signed := body
					if c.signed != nil {
						signed = c.signed(body)
					}
					encode := sigScheme.encode
					if c.encode != nil {
						encode = c.encode
					}
					h := s.headers(secret, at, id, signed, encode)
					if c.edit != nil {
						c.edit(s, h)
					}

					before := gw.rec.count()
					w := gw.post(t, s, sent, h)
					if c.want == http.StatusAccepted {
						gw.stored(t, s, w, before, sent)
						return
					}
					gw.refusal(t, s, w, before, id, at, sent)
					// The same request, correctly signed, is new to the store.
					w = gw.post(t, s, sent, s.headers(s.current, sigNow, id, sent, sigScheme.encode))
					gw.stored(t, s, w, before, sent)
				})
			}

			// The store itself holds exactly what the gateway answered 202 for.
			evs, _, err := gw.db.ListEvents(context.Background(), store.EventFilter{Hook: s.hook, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != gw.rec.count() {
				t.Errorf("store holds %d events, the gateway stored %d", len(evs), gw.rec.count())
			}
		})
	}
}
