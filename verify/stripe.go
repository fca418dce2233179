package verify

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const stripeHeader = "Stripe-Signature"

// stripeVerifier checks `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, an HMAC-SHA256 of
// "<t>.<body>". Stripe sends several v1 entries while the endpoint secret is being rolled, and
// entries of other schemes (v0 and future ones), which are ignored.
type stripeVerifier struct {
	keys      macKeys
	tolerance time.Duration
}

func (s *stripeVerifier) Scheme() string { return SchemeStripe }
func (s *stripeVerifier) String() string { return "verify.Verifier(stripe)" }

// SignedKey is the event's id, "evt_…", which is inside the signed body: a retry of the event
// carries the same id while fields such as pending_webhooks may change.
func (s *stripeVerifier) KeySource(http.Header) string { return "id in the signed body" }

func (s *stripeVerifier) SignedKey(_ http.Header, body []byte) (string, bool) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(body, &ev) != nil {
		return "", false
	}
	var id string
	if json.Unmarshal(ev["id"], &id) != nil || id == "" {
		return "", false
	}
	return id, true
}

func (s *stripeVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	_, err := s.Check(h, body, now)
	return err
}

func (s *stripeVerifier) Check(h http.Header, body []byte, now time.Time) (Proof, error) {
	v, err := requireHeader(h, stripeHeader)
	if err != nil {
		return Proof{}, err
	}
	var (
		ts       string
		haveTS   bool
		sigs     [][]byte
		v1       int
		firstErr error
	)
	for _, item := range strings.Split(v, ",") {
		key, val, ok := strings.Cut(item, "=")
		if !ok {
			return Proof{}, failf("malformed %s header: entry without '='", stripeHeader)
		}
		switch key {
		case "t":
			if haveTS {
				return Proof{}, failf("malformed %s header: more than one timestamp", stripeHeader)
			}
			ts, haveTS = val, true
		case "v1":
			v1++
			sig, err := decodeMAC(encHex, val, sha256.Size)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveTS {
		return Proof{}, failf("missing timestamp in %s header", stripeHeader)
	}
	unix, err := parseUnix(ts, stripeHeader+" header")
	if err != nil {
		return Proof{}, err
	}
	if v1 == 0 {
		return Proof{}, failf("no v1 signature in %s header", stripeHeader)
	}
	if len(sigs) == 0 {
		return Proof{}, firstErr
	}
	idx := matchIndex(sigs, s.keys.sums([]byte(ts), []byte("."), body))
	if idx == 0 {
		return Proof{}, errMismatch
	}
	if err := checkWindow(unix, now, s.tolerance); err != nil {
		return Proof{}, err
	}
	return Proof{Secret: idx, Signed: time.Unix(unix, 0).UTC()}, nil
}

func (s *stripeVerifier) Sign(body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := s.keys.sum(0, []byte(ts), []byte("."), body)
	h := http.Header{}
	h.Set(stripeHeader, "t="+ts+",v1="+encHex.encode(mac))
	return h
}
