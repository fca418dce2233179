package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/store"
)

// The signing keys of the end-to-end tests: Standard Webhooks secrets of
// 32 bytes, the new one first while receivers change over, and one HMAC
// secret.
var (
	signNewKey = []byte("e2e-new-signing-key-0123456789ab")
	signOldKey = []byte("e2e-old-signing-key-0123456789ab")
	signNew    = "whsec_" + base64.StdEncoding.EncodeToString(signNewKey)
	signOld    = "whsec_" + base64.StdEncoding.EncodeToString(signOldKey)
)

const signMACSecret = "e2e-hmac-signing-secret-5e1f"

// signingConfig forwards GitHub events signed as a Standard Webhooks
// sender, and as two plain HMAC senders. secrets is the std action's
// secrets: list.
func signingConfig(secrets string) string {
	return `
egress:
  allow_networks: ${DEMO_ALLOW_NETWORKS}
hooks:
  gh:
    verify: {scheme: github, secret: "` + githubSecret + `"}
    rules: [rules.yaml]
actions:
  std:
    url: ${DEMO_API_URL}/std
    body_raw: true
    forward_headers: [X-GitHub-Event, x-github-delivery, X-Absent, X-Overridden]
    headers:
      X-Overridden: from-the-action
    sign:
      scheme: standard-webhooks
      secrets: ` + secrets + `
    retry: [1500ms, 1500ms]
  hexmac:
    url: ${DEMO_API_URL}/hex
    body: {id: "{{ body.id }}", event: "{{ headers['x-github-event'] }}"}
    sign: {scheme: hmac, header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=", secret: "${SIGN_MAC}"}
    retry: ${DEMO_RETRY}
  b64mac:
    url: ${DEMO_API_URL}/b64
    body: {id: "{{ body.id }}"}
    sign: {scheme: hmac, header: X-Out-Mac, algorithm: sha512, encoding: base64, secret: "${SIGN_MAC}"}
    retry: ${DEMO_RETRY}
`
}

func signingEnv() []string {
	return []string{"SIGN_NEW=" + signNew, "SIGN_OLD=" + signOld, "SIGN_MAC=" + signMACSecret, "HOOKRELAY_LOG_LEVEL=debug", "HOOKRELAY_WATCH=1h"}
}

// signedHit is one request the signature-checking receiver got, with what
// a receiver holding each secret concluded.
type signedHit struct {
	path   string
	header http.Header
	body   []byte
	newOK  error // verification by a receiver that holds the new secret only
	oldOK  error // … the old secret only
}

// signingReceiver is a downstream API on 127.0.0.1 that verifies every
// request as a real Standard Webhooks receiver does, with the official
// library (timestamp window included). /std fails its first request with
// 500 so that the delivery is retried; after that it answers 401 unless
// the new secret verifies.
type signingReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []signedHit
}

func newSigningReceiver(t *testing.T) *signingReceiver {
	newWH, err := standardwebhooks.NewWebhook(signNew)
	if err != nil {
		t.Fatal(err)
	}
	oldWH, err := standardwebhooks.NewWebhook(signOld)
	if err != nil {
		t.Fatal(err)
	}
	rc := &signingReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := signedHit{path: r.URL.Path, header: r.Header.Clone(), body: body}
		if r.URL.Path == "/std" {
			h.newOK = newWH.Verify(body, r.Header)
			h.oldOK = oldWH.Verify(body, r.Header)
		}
		rc.mu.Lock()
		rc.hits = append(rc.hits, h)
		n := len(rc.on(r.URL.Path))
		rc.mu.Unlock()
		switch {
		case r.URL.Path == "/std" && n == 1:
			w.WriteHeader(http.StatusInternalServerError)
		case r.URL.Path == "/std" && h.newOK != nil:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusOK)
		}
		// A careless receiver echoes what it got and the secrets the
		// action holds: the attempt records must mask them all the same.
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s=%s\n", k, strings.Join(v, ","))
		}
		fmt.Fprintf(w, "expected %s\n", signMACSecret)
		if r.URL.Path == "/std" && h.oldOK == nil {
			fmt.Fprintf(w, "expected %s or %s\n", signNew, signOld)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// on is the requests on path; rc.mu is held.
func (rc *signingReceiver) on(path string) []signedHit {
	var out []signedHit
	for _, h := range rc.hits {
		if h.path == path {
			out = append(out, h)
		}
	}
	return out
}

func (rc *signingReceiver) waitFor(t *testing.T, path string, n int) []signedHit {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rc.mu.Lock()
		got := rc.on(path)
		rc.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d requests, want %d", path, len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postGitHub sends a signed GitHub push with headers that are and are not
// named in forward_headers, and returns the event id.
func postGitHub(t *testing.T, srv *server, id string) (string, []byte) {
	t.Helper()
	body := []byte(`{"id":"` + id + `","ref":"refs/heads/main"}`)
	h := githubSign(githubSecret, body, "delivery-"+id)
	h.Set("X-GitHub-Event", "push")
	h.Set("X-Custom", "not-named")
	h.Set("X-Overridden", "from-the-sender")
	status, out := srv.post(t, http.MethodPost, "/hooks/catch/gh", body, h)
	if status != http.StatusAccepted {
		t.Fatalf("POST: %d %v", status, out)
	}
	return out["id"].(string), body
}

// An action signs what it forwards as a Standard Webhooks sender, verified
// by the official library on a local receiver: webhook-id is the delivery
// id and stays the same on the retried attempt, whose timestamp is its
// own; each of the two secrets verifies alone. Once the old secret is
// removed by a reload, a receiver holding only it fails, the new one still
// verifies. The HMAC actions' MACs are recomputed by the receiver, in hex
// with a prefix and in base64. forward_headers passes on exactly the named
// inbound headers. No secret and no MAC shows in the admin API, the log or
// the dry run.
func TestSignedForwarding(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	writeFile(t, cfgPath, signingConfig(`["${SIGN_NEW}", "${SIGN_OLD:-}"]`))
	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: all\n    when: true\n    actions: [std, hexmac, b64mac]\n")
	storeURL := "sqlite://" + filepath.Join(dir, "h.db")
	readKey := createKey(t, storeURL, "auditor", "read")
	rc := newSigningReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: cfgPath, extra: signingEnv()})
	st := openTestStore(t, storeURL)

	evID, body := postGitHub(t, srv, "one")
	ds := waitSettled(t, st, evID, 3)
	var std store.Delivery
	for _, d := range ds {
		if d.Status != store.DeliverySucceeded {
			t.Errorf("delivery %s: %s (%s)", d.Action, d.Status, d.LastError)
		}
		if d.Action == "std" {
			std = d
		}
	}
	hits := rc.waitFor(t, "/std", 2)
	if len(hits) != 2 || std.Attempts != 2 {
		t.Fatalf("/std got %d requests, the delivery %d attempts; want 2 (the first answered 500)", len(hits), std.Attempts)
	}
	for i, h := range hits {
		if got := h.header.Get("webhook-id"); got != std.ID {
			t.Errorf("attempt %d: webhook-id = %q, want the delivery id %q", i+1, got, std.ID)
		}
		if h.newOK != nil || h.oldOK != nil {
			t.Errorf("attempt %d: new secret alone: %v; old secret alone: %v; want both to verify", i+1, h.newOK, h.oldOK)
		}
		if !bytes.Equal(h.body, body) {
			t.Errorf("attempt %d: body %q, want the event's raw body", i+1, h.body)
		}
		if n := len(strings.Split(h.header.Get("webhook-signature"), " ")); n != 2 {
			t.Errorf("attempt %d: webhook-signature has %d entries, want one per secret", i+1, n)
		}
		// Exactly the named inbound headers, the action's own winning.
		if h.header.Get("X-Github-Event") != "push" || h.header.Get("X-Github-Delivery") != "delivery-one" {
			t.Errorf("attempt %d: forwarded headers missing: %v", i+1, h.header)
		}
		if got := h.header.Get("X-Overridden"); got != "from-the-action" {
			t.Errorf("attempt %d: X-Overridden = %q, want the action's", i+1, got)
		}
		for _, name := range []string{"X-Hub-Signature-256", "X-Custom", "X-Absent"} {
			if _, ok := h.header[name]; ok {
				t.Errorf("attempt %d: %s was forwarded: %v", i+1, name, h.header)
			}
		}
	}
	if t1, t2 := hits[0].header.Get("webhook-timestamp"), hits[1].header.Get("webhook-timestamp"); t1 == "" || t1 == t2 {
		t.Errorf("webhook-timestamp of the attempts: %q and %q, want each attempt's own", t1, t2)
	}

	// The HMAC senders, recomputed here.
	hexHit := rc.waitFor(t, "/hex", 1)[0]
	m := hmac.New(sha256.New, []byte(signMACSecret))
	m.Write(hexHit.body)
	if got, want := hexHit.header.Get("X-Signature"), "sha256="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("X-Signature = %q, want %q", got, want)
	}
	b64Hit := rc.waitFor(t, "/b64", 1)[0]
	m = hmac.New(sha512.New, []byte(signMACSecret))
	m.Write(b64Hit.body)
	if got, want := b64Hit.header.Get("X-Out-Mac"), base64.StdEncoding.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("X-Out-Mac = %q, want %q", got, want)
	}
	macs := []string{hexHit.header.Get("X-Signature"), b64Hit.header.Get("X-Out-Mac")}
	for _, h := range hits {
		for _, s := range strings.Split(h.header.Get("webhook-signature"), " ") {
			macs = append(macs, strings.TrimPrefix(s, "v1,"))
		}
	}

	// Rotation: the old secret is removed; a reload signs with the new one only.
	writeFile(t, cfgPath, signingConfig(`["${SIGN_NEW}"]`))
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, `msg="config reloaded" trigger=SIGHUP`, 1)
	evID2, _ := postGitHub(t, srv, "two")
	waitSettled(t, st, evID2, 3)
	after := rc.waitFor(t, "/std", 3)[2]
	if after.newOK != nil {
		t.Errorf("after the rotation the new secret does not verify: %v", after.newOK)
	}
	if after.oldOK == nil {
		t.Error("after the rotation a receiver holding only the old secret still verifies")
	}
	if n := len(strings.Split(after.header.Get("webhook-signature"), " ")); n != 1 {
		t.Errorf("after the rotation webhook-signature has %d entries, want 1", n)
	}
	macs = append(macs, strings.TrimPrefix(after.header.Get("webhook-signature"), "v1,"))

	// What an operator sees: the admin API with a read key, the dry run, the log.
	forbidden := map[string]string{
		"new secret": signNew, "old secret": signOld, "HMAC secret": signMACSecret,
		"new key": strings.TrimPrefix(signNew, "whsec_"), "old key": strings.TrimPrefix(signOld, "whsec_"),
	}
	for i, mac := range macs {
		forbidden[fmt.Sprintf("MAC %d", i+1)] = mac
	}
	var shown seen
	sawID, sawMasked := false, false
	for _, id := range []string{evID, evID2} {
		_, ev := srv.api(t, readKey, http.MethodGet, "/events/"+id, nil)
		shown.add("API event", ev)
		for _, d := range list(ev, "deliveries") {
			status, dv := srv.api(t, readKey, http.MethodGet, "/deliveries/"+d["id"].(string), nil)
			if status != http.StatusOK {
				t.Fatalf("GET delivery: %d %v", status, dv)
			}
			shown.add("API delivery", dv)
			for _, at := range list(dv, "attempt_log") {
				hdr, _ := at["request_headers"].(map[string]any)
				if hdr["Webhook-Id"] == d["id"] {
					sawID = true
				}
				if hdr["Webhook-Signature"] == "[redacted]" || hdr["X-Out-Mac"] == "[redacted]" {
					sawMasked = true
				}
			}
		}
	}
	if !sawID || !sawMasked {
		t.Errorf("the attempt views do not show the signing headers (webhook-id %t, a masked MAC %t)", sawID, sawMasked)
	}

	payloadFile := filepath.Join(dir, "push.json")
	if err := os.WriteFile(payloadFile, body, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, signingConfig(`["${SIGN_NEW}", "${SIGN_OLD:-}"]`))
	dry, err := cliResult(t, append([]string{"DEMO_API_URL=" + rc.URL, "DEMO_ALLOW_NETWORKS=127.0.0.0/8", "DEMO_RETRY=1s"}, signingEnv()...),
		"test", "--config", cfgPath, "--hook", "gh", "--payload", payloadFile, "--sign",
		"--header", "X-GitHub-Event: push", "--header", "X-Custom: not-named")
	if err != nil {
		t.Fatalf("hookrelay test: %v\n%s", err, dry)
	}
	shown.add("dry run", dry)
	for _, want := range []string{
		"X-Github-Event: push",
		"Webhook-Id: <delivery id, the same on every attempt>",
		"Webhook-Signature (computed at each attempt over the body below)",
		"Webhook-Timestamp: <time of each attempt>",
		"signed:   standard-webhooks, 2 secrets",
		`signed:   hmac sha256 hex with prefix "sha256=" in X-Signature, 1 secret`,
		"signed:   hmac sha512 base64 in X-Out-Mac, 1 secret",
	} {
		if !strings.Contains(dry, want) {
			t.Errorf("the dry run does not show %q:\n%s", want, dry)
		}
	}
	if strings.Contains(dry, "not-named") {
		t.Errorf("the dry run forwards a header that is not named:\n%s", dry)
	}

	if err := srv.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	logs := srv.output()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Error("the server did not log at debug level")
	}
	shown.add("log", logs)
	for where, text := range shown.texts {
		for what, secret := range forbidden {
			if strings.Contains(text.String(), secret) {
				t.Errorf("%s shows the %s %q", where, what, secret)
			}
		}
	}
}

// A config naming a credential or hop-by-hop header in forward_headers, or
// an invalid signing secret, is refused at load with file:line:col, and a
// running server keeps its config.
func TestSigningConfigRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: all\n    when: true\n    actions: [std]\n")
	for _, tc := range []struct{ replace, with, want string }{
		{"X-Absent", "X-Hub-Signature-256", `hookrelay.yaml:12:58: action "std": forward_headers: X-Hub-Signature-256 carries a credential`},
		{"X-Absent", "Connection", `hookrelay.yaml:12:58: action "std": forward_headers: Connection is a hop-by-hop header`},
		{"X-Absent", "Authorization", `hookrelay.yaml:12:58: action "std": forward_headers: Authorization carries a credential`},
		{`["${SIGN_NEW}"]`, `["whsec_bm90IGJhc2U2NA"]`, `hookrelay.yaml:17:17: action "std": sign.secrets: secret #1: the part after whsec_ is not valid padded standard base64`},
	} {
		writeFile(t, cfgPath, strings.Replace(signingConfig(`["${SIGN_NEW}"]`), tc.replace, tc.with, 1))
		out, err := cliResult(t, append([]string{"DEMO_API_URL=http://127.0.0.1:1", "DEMO_ALLOW_NETWORKS=127.0.0.0/8", "DEMO_RETRY=1s"}, signingEnv()...),
			"validate", "--config", cfgPath)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("validate with %s: %v\n%s\nwant %q", tc.with, err, out, tc.want)
		}
		if strings.Contains(out, signNew) || strings.Contains(out, signMACSecret) {
			t.Errorf("the error shows a secret:\n%s", out)
		}
	}
}
