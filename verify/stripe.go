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
	keys      [][]byte
	tolerance time.Duration
}

func (s *stripeVerifier) Scheme() string { return SchemeStripe }
func (s *stripeVerifier) String() string { return "verify.Verifier(stripe)" }

// SignedKey is the event's id, "evt_…", which is inside the signed body: a retry of the event
// carries the same id while fields such as pending_webhooks may change.
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
	v, err := requireHeader(h, stripeHeader)
	if err != nil {
		return err
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
			return failf("malformed %s header: entry without '='", stripeHeader)
		}
		switch key {
		case "t":
			if haveTS {
				return failf("malformed %s header: more than one timestamp", stripeHeader)
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
		return failf("missing timestamp in %s header", stripeHeader)
	}
	unix, err := parseUnix(ts, stripeHeader+" header")
	if err != nil {
		return err
	}
	if v1 == 0 {
		return failf("no v1 signature in %s header", stripeHeader)
	}
	if len(sigs) == 0 {
		return firstErr
	}
	expected := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		expected[i] = computeMAC(sha256.New, k, []byte(ts), []byte("."), body)
	}
	if !anyEqual(sigs, expected) {
		return errMismatch
	}
	return checkWindow(unix, now, s.tolerance)
}

func (s *stripeVerifier) Sign(body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := computeMAC(sha256.New, s.keys[0], []byte(ts), []byte("."), body)
	h := http.Header{}
	h.Set(stripeHeader, "t="+ts+",v1="+encHex.encode(mac))
	return h
}
