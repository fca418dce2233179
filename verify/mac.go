package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"
)

// macVerifier checks schemes whose one header carries an HMAC of the raw body, optionally after
// a fixed prefix: the generic hmac scheme, OnCloudWine, OrderCloud, GitHub and Shopify.
type macVerifier struct {
	scheme   string
	header   string
	prefix   string
	hash     func() hash.Hash
	enc      encoding
	keys     macKeys
	idHeader string // header carrying the sender's delivery id, set by Sign; "" when none
}

var algorithms = map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}

func newGenericHMAC(c Config, keys [][]byte) (Verifier, error) {
	if c.Header == "" {
		return nil, configErr("header", "is required for scheme hmac")
	}
	if !validHeaderName(c.Header) {
		return nil, configErr("header", "%q is not a valid HTTP header name", c.Header)
	}
	alg := strings.ToLower(c.Algorithm)
	if alg == "" {
		alg = "sha256"
	}
	h, ok := algorithms[alg]
	if !ok {
		return nil, configErr("algorithm", "unknown algorithm %q; known algorithms: sha1, sha256, sha512", c.Algorithm)
	}
	var enc encoding
	switch strings.ToLower(c.Encoding) {
	case "", "hex":
		enc = encHex
	case "base64":
		enc = encBase64
	default:
		return nil, configErr("encoding", "unknown encoding %q; known encodings: hex, base64", c.Encoding)
	}
	for i := 0; i < len(c.Prefix); i++ {
		if b := c.Prefix[i]; b < 0x20 || b == 0x7f {
			return nil, configErr("prefix", "must not contain control characters")
		}
	}
	return &macVerifier{
		scheme: SchemeHMAC, header: http.CanonicalHeaderKey(c.Header), prefix: c.Prefix, hash: h, enc: enc, keys: newMACKeys(h, keys),
	}, nil
}

// validHeaderName reports whether s is an RFC 9110 token, the only legal header field name.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

func (m *macVerifier) Scheme() string { return m.scheme }

// SignedKey: these schemes sign the body alone; a delivery-id header (GitHub's X-GitHub-Delivery,
// Shopify's X-Shopify-Webhook-Id) is not signed, so it cannot tell two events apart.
func (m *macVerifier) SignedKey(http.Header, []byte) (string, bool) { return "", false }
func (m *macVerifier) String() string                               { return "verify.Verifier(" + m.scheme + ")" }

func (m *macVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	_, err := m.Check(h, body, now)
	return err
}

func (m *macVerifier) KeySource(http.Header) string { return "" }

func (m *macVerifier) Check(h http.Header, body []byte, _ time.Time) (Proof, error) {
	v, err := requireHeader(h, m.header)
	if err != nil {
		return Proof{}, err
	}
	parts, prefix, several := []string{v}, m.prefix, m.several()
	if several {
		// A sender signing with two secrets while it rotates them sends
		// both MACs in the one header, separated by commas, or the header
		// twice, which is the same value joined (RFC 9110, 5.3).
		if vs := h.Values(m.header); len(vs) > 1 {
			v = strings.Join(vs, ",")
		}
		parts = strings.Split(v, ",")
		// Each is trimmed of spaces, so a prefix cannot start with one.
		prefix = strings.TrimLeft(prefix, " ")
	}
	sigs := make([][]byte, 0, len(parts))
	for _, p := range parts {
		if several {
			p = strings.Trim(p, " ")
			if p == "" {
				return Proof{}, failf("signature is empty")
			}
		}
		if prefix != "" {
			rest, ok := strings.CutPrefix(p, prefix)
			if !ok {
				if len(parts) > 1 {
					return Proof{}, failf("a signature in header %s does not start with %q", m.header, m.prefix)
				}
				return Proof{}, failf("header %s does not start with %q", m.header, m.prefix)
			}
			p = rest
		}
		sig, err := decodeMAC(m.enc, p, m.hash().Size())
		if err != nil {
			return Proof{}, err
		}
		sigs = append(sigs, sig)
	}
	idx := matchIndex(sigs, m.keys.sums(body))
	if idx == 0 {
		return Proof{}, errMismatch
	}
	return Proof{Secret: idx}, nil
}

// several reports whether the header may list several signatures: for the
// generic hmac scheme, unless its prefix holds a comma itself. The vendor
// schemes send one.
func (m *macVerifier) several() bool {
	return m.scheme == SchemeHMAC && !strings.Contains(m.prefix, ",")
}

func (m *macVerifier) Sign(body []byte, now time.Time) http.Header {
	h := http.Header{}
	h.Set(m.header, m.prefix+m.enc.encode(m.keys.sum(0, body)))
	if m.idHeader != "" {
		h.Set(m.idHeader, uuidString(deliveryID(body, now)))
	}
	return h
}

var _ fmt.Stringer = (*macVerifier)(nil)
