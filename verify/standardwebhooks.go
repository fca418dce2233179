package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const whsecPrefix = "whsec_"

// standardWebhooksVerifier checks the Standard Webhooks specification (which Svix follows):
// `webhook-id`, `webhook-timestamp` and `webhook-signature` (a space-separated list of
// `v1,<base64>`) over "<id>.<timestamp>.<body>"; Svix's `svix-*` header names are accepted too.
//
// The official library computes and compares the MACs. Its Verify reads the clock itself and has
// a fixed five-minute tolerance, so this type calls VerifyIgnoringTimestamp and enforces the
// window with the injected now and the configured tolerance.
type standardWebhooksVerifier struct {
	hooks     []*standardwebhooks.Webhook
	tolerance time.Duration
}

func newStandardWebhooks(secrets []string, tolerance time.Duration) (Verifier, error) {
	v := &standardWebhooksVerifier{tolerance: tolerance}
	for i, s := range secrets {
		// The library decodes secrets the same way (standard base64 after an optional whsec_
		// prefix); decoding here first lets an empty key be refused, which it would accept.
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, whsecPrefix))
		if err != nil {
			return nil, configErr("secrets", "secret #%d is not of the form whsec_<base64>", i+1)
		}
		if len(key) == 0 {
			return nil, configErr("secrets", "secret #%d decodes to an empty key", i+1)
		}
		wh, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			return nil, configErr("secrets", "secret #%d is unusable", i+1)
		}
		v.hooks = append(v.hooks, wh)
	}
	return v, nil
}

func (s *standardWebhooksVerifier) Scheme() string { return SchemeStandardWebhooks }
func (s *standardWebhooksVerifier) String() string { return "verify.Verifier(standard-webhooks)" }

// family is the header family Verify reads: "webhook" (webhook-id, webhook-timestamp,
// webhook-signature) unless there is no webhook-signature but a svix-signature, then "svix".
// Headers of the other family are ignored, neither verified nor used as the key.
func family(h http.Header) string {
	if _, ok := headerValue(h, "webhook-signature"); !ok {
		if _, ok := headerValue(h, "svix-signature"); ok {
			return "svix"
		}
	}
	return "webhook"
}

// SignedKey is the id the signature covers: the first <family>-id header of the family whose
// signature verified, as Verify read it. An id header of the other family, or a second id
// header, added to a signed request changes nothing.
func (s *standardWebhooksVerifier) KeySource(h http.Header) string { return family(h) + "-id" }

func (s *standardWebhooksVerifier) SignedKey(h http.Header, _ []byte) (string, bool) {
	id, ok := headerValue(h, family(h)+"-id")
	return id, ok && id != ""
}

func (s *standardWebhooksVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	_, err := s.Check(h, body, now)
	return err
}

func (s *standardWebhooksVerifier) Check(h http.Header, body []byte, now time.Time) (Proof, error) {
	family := family(h)
	sigs, err := requireHeader(h, family+"-signature")
	if err != nil {
		return Proof{}, err
	}
	id, err := requireHeader(h, family+"-id")
	if err != nil {
		return Proof{}, err
	}
	ts, err := requireHeader(h, family+"-timestamp")
	if err != nil {
		return Proof{}, err
	}
	unix, err := parseUnix(ts, family+"-timestamp")
	if err != nil {
		return Proof{}, err
	}
	// The library only reports "no match"; decoding the v1 entries first says what is wrong
	// with a list that holds no usable signature at all.
	v1, usable := 0, 0
	var firstErr error
	for _, entry := range strings.Split(sigs, " ") {
		sig, ok := strings.CutPrefix(entry, "v1,")
		if !ok {
			continue
		}
		v1++
		b, err := base64.StdEncoding.Strict().DecodeString(sig)
		switch {
		case err != nil || strings.ContainsAny(sig, "\r\n"):
			if firstErr == nil {
				firstErr = failf("signature is not valid padded standard base64")
			}
		case len(b) != sha256.Size:
			if firstErr == nil {
				firstErr = failf("signature is %d bytes, want %d", len(b), sha256.Size)
			}
		default:
			usable++
		}
	}
	if v1 == 0 {
		return Proof{}, failf("no v1 signature in header %s-signature", family)
	}
	if usable == 0 {
		return Proof{}, firstErr
	}

	canonical := http.Header{}
	canonical.Set(standardwebhooks.HeaderWebhookID, id)
	canonical.Set(standardwebhooks.HeaderWebhookTimestamp, ts)
	canonical.Set(standardwebhooks.HeaderWebhookSignature, sigs)
	idx := 0
	for i, wh := range s.hooks { // no early exit: timing does not tell which secret matched
		if wh.VerifyIgnoringTimestamp(body, canonical) == nil && idx == 0 {
			idx = i + 1
		}
	}
	if idx == 0 {
		return Proof{}, errMismatch
	}
	if err := checkWindow(unix, now, s.tolerance); err != nil {
		return Proof{}, err
	}
	return Proof{Secret: idx, Signed: time.Unix(unix, 0).UTC()}, nil
}

func (s *standardWebhooksVerifier) Sign(body []byte, now time.Time) http.Header {
	d := deliveryID(body, now)
	id := "msg_" + hex.EncodeToString(d[:])
	sig, err := s.hooks[0].Sign(id, now, body)
	if err != nil { // the library never fails to sign with a decoded key
		return nil
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}
