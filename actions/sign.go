package actions

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Signing schemes an action may sign its requests with.
const (
	SignStandardWebhooks = "standard-webhooks"
	SignHMAC             = "hmac"
)

// Standard Webhooks signing keys are, by the specification, 24 to 64
// random bytes, written whsec_<base64>.
const (
	whsecPrefix    = "whsec_"
	minWhsecKeyLen = 24
	maxWhsecKeyLen = 64
)

// SignSpec says how an action signs what it sends, so that the receiver
// can verify hookrelay as the sender. The signature covers the exact bytes
// of the body sent and is computed at each attempt.
type SignSpec struct {
	// Scheme is SignStandardWebhooks (webhook-id, webhook-timestamp and
	// webhook-signature) or SignHMAC (one header carrying an HMAC of the
	// body).
	Scheme string
	// Header, Algorithm (sha1, sha256 (default), sha512), Encoding (hex
	// (default) or base64) and Prefix: hmac only.
	Header, Algorithm, Encoding, Prefix string
	// Secrets sign in this order, each giving one signature: the new
	// secret first while a receiver still holds the old one. Standard
	// Webhooks secrets are whsec_<base64 of 24 to 64 bytes>; an hmac
	// secret is used as its bytes.
	Secrets []string
}

// signer signs one request at each attempt.
type signer struct {
	scheme string
	header string // hmac: the header carrying the MACs
	prefix string
	alg    string
	hash   func() hash.Hash
	enc    string
	keys   [][]byte                    // hmac keys
	hooks  []*standardwebhooks.Webhook // standard-webhooks keys
	// secrets are the configured secrets as written, to keep them out of
	// everything an attempt records.
	secrets []string
}

var signAlgorithms = map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}

func compileSign(s *SignSpec) (*signer, error) {
	if s == nil {
		return nil, nil
	}
	scheme := strings.ToLower(strings.TrimSpace(s.Scheme))
	sg := &signer{scheme: scheme}
	switch scheme {
	case "":
		return nil, &FieldError{Field: "sign.scheme", Err: fmt.Errorf("is required: %s or %s", SignStandardWebhooks, SignHMAC)}
	case SignStandardWebhooks:
		for _, f := range []struct{ name, value string }{
			{"header", s.Header}, {"algorithm", s.Algorithm}, {"encoding", s.Encoding}, {"prefix", s.Prefix},
		} {
			if f.value != "" {
				return nil, &FieldError{Field: "sign." + f.name, Err: fmt.Errorf("applies only to scheme hmac: standard-webhooks always signs webhook-signature with HMAC-SHA256 in base64")}
			}
		}
	case SignHMAC:
		if err := sg.compileHMAC(s); err != nil {
			return nil, err
		}
	default:
		return nil, &FieldError{Field: "sign.scheme", Err: fmt.Errorf("unknown scheme %q: want %s or %s", s.Scheme, SignStandardWebhooks, SignHMAC)}
	}
	if len(s.Secrets) == 0 {
		return nil, &FieldError{Field: "sign.secrets", Err: errors.New("a secret is required (secret: one, or secrets: [new, old] while a receiver changes over)")}
	}
	for i, sec := range s.Secrets {
		field := "sign.secrets." + strconv.Itoa(i)
		if sec == "" {
			return nil, &FieldError{Field: field, Err: errors.New("the secret is empty (is its environment variable set?)")}
		}
		sg.secrets = append(sg.secrets, sec)
		if scheme == SignHMAC {
			sg.keys = append(sg.keys, []byte(sec))
			continue
		}
		key, err := whsecKey(sec)
		if err != nil {
			return nil, &FieldError{Field: field, Err: err}
		}
		wh, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			return nil, &FieldError{Field: field, Err: errors.New("the key is unusable")}
		}
		sg.hooks = append(sg.hooks, wh)
	}
	return sg, nil
}

// whsecKey decodes a Standard Webhooks secret. The message never quotes
// the secret.
func whsecKey(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, whsecPrefix)
	if !ok {
		return nil, errors.New("not a Standard Webhooks secret: want whsec_ followed by the key in base64 (whsec_$(openssl rand -base64 32))")
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errors.New("the part after whsec_ is not valid padded standard base64")
	}
	if len(key) < minWhsecKeyLen || len(key) > maxWhsecKeyLen {
		return nil, fmt.Errorf("the key is %d bytes: the Standard Webhooks specification wants %d to %d random bytes", len(key), minWhsecKeyLen, maxWhsecKeyLen)
	}
	return key, nil
}

func (sg *signer) compileHMAC(s *SignSpec) error {
	switch {
	case s.Header == "":
		return &FieldError{Field: "sign.header", Err: errors.New("is required for scheme hmac: the header the receiver reads the MAC from, such as X-Signature")}
	case !httpguts.ValidHeaderFieldName(s.Header):
		return &FieldError{Field: "sign.header", Err: fmt.Errorf("%q is not a valid header name", s.Header)}
	}
	canon := http.CanonicalHeaderKey(s.Header)
	if why, ok := reservedHeaders[canon]; ok {
		return &FieldError{Field: "sign.header", Err: fmt.Errorf("%s cannot carry the signature: %s", canon, why)}
	}
	if canon == "Authorization" || canon == "Content-Type" || canon == "User-Agent" {
		return &FieldError{Field: "sign.header", Err: fmt.Errorf("%s has another job: pick a header of its own, such as X-Signature", canon)}
	}
	sg.header = canon
	sg.alg = strings.ToLower(strings.TrimSpace(s.Algorithm))
	if sg.alg == "" {
		sg.alg = "sha256"
	}
	h, ok := signAlgorithms[sg.alg]
	if !ok {
		return &FieldError{Field: "sign.algorithm", Err: fmt.Errorf("unknown algorithm %q: want sha256, sha1 or sha512", s.Algorithm)}
	}
	sg.hash = h
	sg.enc = strings.ToLower(strings.TrimSpace(s.Encoding))
	switch sg.enc {
	case "":
		sg.enc = "hex"
	case "hex", "base64":
	default:
		return &FieldError{Field: "sign.encoding", Err: fmt.Errorf("unknown encoding %q: want hex or base64", s.Encoding)}
	}
	if !httpguts.ValidHeaderFieldValue(s.Prefix) || strings.Contains(s.Prefix, ",") {
		return &FieldError{Field: "sign.prefix", Err: errors.New("must not contain control characters or a comma")}
	}
	sg.prefix = s.Prefix
	return nil
}

// headers are the names the signer sets, canonical.
func (sg *signer) headers() []string {
	if sg.scheme == SignStandardWebhooks {
		return []string{"Webhook-Id", "Webhook-Signature", "Webhook-Timestamp"}
	}
	return []string{sg.header}
}

// sign sets the signature headers for body, sent as delivery id at now.
// Standard Webhooks: webhook-id is id, webhook-timestamp is now, and
// webhook-signature lists one v1 signature per secret, separated by
// spaces. hmac: the header lists one prefixed MAC of the body per secret,
// separated by ", " (the form a repeated header takes when joined). It
// returns the MACs, as written, for scrubbing.
func (sg *signer) sign(h http.Header, id string, body []byte, now time.Time) ([]string, error) {
	if sg.scheme == SignStandardWebhooks {
		sigs := make([]string, 0, len(sg.hooks))
		var macs []string
		for _, wh := range sg.hooks {
			sig, err := wh.Sign(id, now, body)
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, sig)
			macs = append(macs, strings.TrimPrefix(sig, "v1,"))
		}
		h.Set(standardwebhooks.HeaderWebhookID, id)
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
		return macs, nil
	}
	macs := make([]string, 0, len(sg.keys))
	for _, k := range sg.keys {
		m := hmac.New(sg.hash, k)
		m.Write(body)
		sum := m.Sum(nil)
		if sg.enc == "base64" {
			macs = append(macs, sg.prefix+base64.StdEncoding.EncodeToString(sum))
		} else {
			macs = append(macs, sg.prefix+hex.EncodeToString(sum))
		}
	}
	h.Set(sg.header, strings.Join(macs, ", "))
	return macs, nil
}

// describe says how requests are signed, without any secret.
func (sg *signer) describe() string {
	n := fmt.Sprintf("%d secrets", len(sg.secrets))
	if len(sg.secrets) == 1 {
		n = "1 secret"
	}
	if sg.scheme == SignStandardWebhooks {
		return "standard-webhooks, " + n
	}
	d := fmt.Sprintf("hmac %s %s", sg.alg, sg.enc)
	if sg.prefix != "" {
		d += fmt.Sprintf(" with prefix %q", sg.prefix)
	}
	return d + " in " + sg.header + ", " + n
}

// Signing describes how the action signs its requests ("standard-webhooks,
// 2 secrets"; "hmac sha256 hex with prefix "sha256=" in X-Signature, 1
// secret"), or is "" when it does not. It never holds a secret.
func (a *Action) Signing() string {
	if a.sign == nil {
		return ""
	}
	return a.sign.describe()
}

// SameSigning reports whether a and b sign alike: the same scheme,
// settings and secrets in the same order. Signing cannot tell a rotated
// secret from the one it replaced; this can, without showing either.
func (a *Action) SameSigning(b *Action) bool {
	x, y := a.sign, b.sign
	if x == nil || y == nil {
		return x == y
	}
	return x.describe() == y.describe() && slices.Equal(x.secrets, y.secrets)
}

// SignedHeaders are the headers Client.Do adds at each attempt to sign the
// request (canonical names), or nil when the action does not sign. Render
// leaves them out: their values depend on the attempt's time and the
// delivery id.
func (a *Action) SignedHeaders() []string {
	if a.sign == nil {
		return nil
	}
	return a.sign.headers()
}

// newMessageID is a webhook-id for a request sent outside a delivery.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}
