package verify

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	slackSignatureHeader = "X-Slack-Signature"
	slackTimestampHeader = "X-Slack-Request-Timestamp"
	slackVersion         = "v0"
)

// slackVerifier checks `X-Slack-Signature: v0=<hex>`, an HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>".
type slackVerifier struct {
	keys      macKeys
	tolerance time.Duration
}

func (s *slackVerifier) Scheme() string { return SchemeSlack }

// SignedKey: Slack signs the timestamp and the body, and signs a new timestamp on every retry of an
// event, so the body alone is the key.
func (s *slackVerifier) SignedKey(http.Header, []byte) (string, bool) { return "", false }
func (s *slackVerifier) KeySource(http.Header) string                 { return "" }
func (s *slackVerifier) String() string                               { return "verify.Verifier(slack)" }

func (s *slackVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	_, err := s.Check(h, body, now)
	return err
}

func (s *slackVerifier) Check(h http.Header, body []byte, now time.Time) (Proof, error) {
	v, err := requireHeader(h, slackSignatureHeader)
	if err != nil {
		return Proof{}, err
	}
	ts, err := requireHeader(h, slackTimestampHeader)
	if err != nil {
		return Proof{}, err
	}
	unix, err := parseUnix(ts, slackTimestampHeader)
	if err != nil {
		return Proof{}, err
	}
	rest, ok := strings.CutPrefix(v, slackVersion+"=")
	if !ok {
		return Proof{}, failf("header %s does not start with %q", slackSignatureHeader, slackVersion+"=")
	}
	sig, err := decodeMAC(encHex, rest, sha256.Size)
	if err != nil {
		return Proof{}, err
	}
	idx := matchIndex([][]byte{sig}, s.keys.sums(slackBase(ts), body))
	if idx == 0 {
		return Proof{}, errMismatch
	}
	if err := checkWindow(unix, now, s.tolerance); err != nil {
		return Proof{}, err
	}
	return Proof{Secret: idx, Signed: time.Unix(unix, 0).UTC()}, nil
}

func (s *slackVerifier) Sign(body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set(slackTimestampHeader, ts)
	h.Set(slackSignatureHeader, slackVersion+"="+encHex.encode(s.keys.sum(0, slackBase(ts), body)))
	return h
}

// slackBase is what Slack signs before the body: the version and the
// timestamp.
func slackBase(ts string) []byte { return []byte(slackVersion + ":" + ts + ":") }
