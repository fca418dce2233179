package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// The config secrets of the leak test: one of every kind the config knows.
const (
	leakGenSecret    = "gen-hmac-secret-5d1c9e"      // verify secret of a generic hmac hook
	leakOCKey        = "oc-hashkey-secret-a7f302"    // OrderCloud HashKey
	leakBasicPW      = "basic-password-c0ffee42"     // auth.basic password
	leakHeaderValue  = "relay-header-value-9b8a7c"   // auth.header value
	leakToken        = "tok-url-token-e1d2c3b4a596"  // URL token
	leakActionKey    = "action-api-key-47aa01"       // action header from ${…}
	leakActionBearer = "action-bearer-token-88c1d0"  // action bearer from ${…}
	leakQuerySecret  = "action-query-secret-3c3c3c"  // ?access_token= in an action URL
	leakWrongToken   = "guessed-wrong-token-7777zz"  // a token an attacker tries
	leakUserToken    = "payload-usertoken-6e5d4c3b"  // a bearer credential by name (UserToken)
	leakPassword     = "payload-password-1a2b3c4d"   // by name (password)
	leakNested       = "payload-client-secret-0f0f0" // by name, nested (profile.client_secret)
	leakFreeBearer   = "free-text-bearer-5a5a5a5a"   // by pattern: "Authorization: Bearer …" in free text
	leakQueryToken   = "event-query-token-2d2d2d2d"  // ?access_token= on the catch URL
)

// leakJWT is a JWT found by its shape only, in a field with a harmless name.
var leakJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
	base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"leak-test-subject","roles":["BuyerAdmin"]}`)) + ".c2lnbmF0dXJlLWxlYWstdGVzdA"

const leakConfig = `
egress:
  allow_networks: ${DEMO_ALLOW_NETWORKS}
hooks:
  gen:
    verify: {scheme: hmac, header: X-My-Mac, algorithm: sha256, encoding: hex, secret: "${GEN_SECRET}"}
    auth:
      basic: {username: relay, password: "${BASIC_PW}"}
    rules: [rules.yaml]
  oc:
    verify: {scheme: ordercloud, secret: "${OC_KEY}"}
    # A key made from a credential is a credential: it is shown masked.
    idempotency: {key: 'body.id + ":" + body.UserToken'}
    rules: [rules.yaml]
  tok:
    verify: {scheme: none}
    token: ${TOK_TOKEN}
    auth:
      header: {name: X-Relay-Key, value: "${HDR_VALUE}"}
    rules: [rules-tok.yaml]
actions:
  cb:
    method: PATCH
    url: ${DEMO_API_URL}/v1/cb?access_token=${QUERY_SECRET}
    headers:
      X-Api-Key: ${ACTION_KEY}
    auth:
      bearer: "{{ body.UserToken }}"
    body: {note: "{{ body.note }}", comment: "{{ body.comment }}", data: "{{ body.data }}"}
    retry: ${DEMO_RETRY}
  fwd:
    url: ${DEMO_API_URL}/v1/fwd
    body_raw: true
    auth:
      bearer: ${ACTION_BEARER}
    retry: ${DEMO_RETRY}
  oa:
    url: ${DEMO_API_URL}/v1/oa
    auth:
      oauth2:
        token_url: ${DEMO_API_URL}/oauth/token
        client_id: hookrelay
        client_secret: ${OAUTH_CLIENT_SECRET}
    body: {id: "{{ body.id }}"}
    retry: ${DEMO_RETRY}
`

func leakEnv() []string {
	return []string{
		"GEN_SECRET=" + leakGenSecret, "OC_KEY=" + leakOCKey, "BASIC_PW=" + leakBasicPW,
		"HDR_VALUE=" + leakHeaderValue, "TOK_TOKEN=" + leakToken, "ACTION_KEY=" + leakActionKey,
		"ACTION_BEARER=" + leakActionBearer, "QUERY_SECRET=" + leakQuerySecret,
		"OAUTH_CLIENT_SECRET=" + oauthClientSecret, "HOOKRELAY_LOG_LEVEL=debug",
	}
}

// leakEncodings are the ways a payload reaches the ingress. text is refused
// by the ingress (it is not JSON), which must not leak either.
var leakEncodings = []struct {
	name, contentType string
	encode            func(fields [][2]string) []byte
}{
	{"json", "application/json", leakJSON},
	{"json-bom", "application/json; charset=utf-8", func(f [][2]string) []byte { return append([]byte("\xef\xbb\xbf"), leakJSON(f)...) }},
	{"form", "application/x-www-form-urlencoded", func(f [][2]string) []byte {
		var parts []string
		for _, kv := range f {
			parts = append(parts, url.QueryEscape(kv[0])+"="+url.QueryEscape(kv[1]))
		}
		return []byte(strings.Join(parts, "&"))
	}},
	{"text", "text/plain", func(f [][2]string) []byte {
		var b bytes.Buffer
		for _, kv := range f {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
		return b.Bytes()
	}},
}

func leakJSON(f [][2]string) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	for i, kv := range f {
		if i > 0 {
			b.WriteString(",")
		}
		if kv[0] == "profile[client_secret]" {
			fmt.Fprintf(&b, `"profile":{"client_secret":%q}`, kv[1])
			continue
		}
		fmt.Fprintf(&b, "%q:%q", kv[0], kv[1])
	}
	b.WriteString("}")
	return b.Bytes()
}

// leakFields are the payload's fields: credentials by name, by pattern and
// a config secret by value, next to harmless ones.
func leakFields(id string) [][2]string {
	return [][2]string{
		{"id", id},
		{"UserToken", leakUserToken},
		{"password", leakPassword},
		{"profile[client_secret]", leakNested},
		{"note", "signed in as " + leakJWT},
		{"comment", "forwarded Authorization: Bearer " + leakFreeBearer},
		{"data", "copy of " + leakActionKey},
		{"email", "ops@example.com"},
	}
}

func leakMAC(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// Nothing hookrelay shows — an admin API answer to a read-scoped key, the
// CLI's output, a log line at debug level — carries a credential: not a
// secret of the config (hook secrets, the URL token, auth.basic and
// auth.header values, action headers and bearer tokens from ${…}, a token
// in an action URL, an OAuth2 client secret), not one that arrived in a
// payload (by name, nested, a JWT or a Bearer credential in free text)
// whatever its encoding, nor a MAC header. Right and wrong URL tokens
// reach the log only as a prefix.
func TestNothingLeaks(t *testing.T) {
	onEachStore(t, testNothingLeaks)
}

func testNothingLeaks(t *testing.T, b storeBackend) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	writeFile(t, cfgPath, leakConfig)
	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: all\n    when: true\n    actions: [cb, fwd, oa]\n")
	// The rule text holds a secret of the config: GET /hooks shows it masked.
	writeFile(t, filepath.Join(dir, "rules-tok.yaml"), "rules:\n  - name: keyed\n    when: headers[\"x-relay-key\"] == \"${HDR_VALUE}\"\n    actions: [cb, fwd]\n")

	forbidden := map[string]string{
		"hmac verify secret": leakGenSecret, "OrderCloud HashKey": leakOCKey, "auth.basic password": leakBasicPW,
		"auth.basic credential": base64.StdEncoding.EncodeToString([]byte("relay:" + leakBasicPW)),
		"auth.header value":     leakHeaderValue, "URL token": leakToken, "wrong URL token": leakWrongToken,
		"action header": leakActionKey, "action bearer": leakActionBearer, "action URL token": leakQuerySecret,
		"OAuth2 client secret": oauthClientSecret, "OAuth2 access token": oauthAccessToken,
		"OAuth2 client secret, as Basic": base64.StdEncoding.EncodeToString([]byte("hookrelay:" + oauthClientSecret)),
		"payload UserToken":              leakUserToken, "payload password": leakPassword, "payload nested secret": leakNested,
		"payload JWT": leakJWT, "JWT claims": base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"leak-test-subject"`))[:20],
		"payload free-text bearer": leakFreeBearer, "catch URL query token": leakQueryToken,
	}
	var all seen
	respond := func(path string, n int) int {
		if n == 1 {
			return http.StatusInternalServerError // the receiver echoes the request back
		}
		return http.StatusOK
	}
	rc := newLeakyReceiver(t, respond)
	storeURL := b.url(t)
	readKey := createKey(t, storeURL, "auditor", "read")
	env := leakEnv()
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, retry: "20ms,20ms,20ms", config: cfgPath, extra: env})
	st := openTestStore(t, storeURL)

	// Ingress: every hook × every encoding.
	var ids []string
	post := func(path string, body []byte, h http.Header, want int) {
		t.Helper()
		status, raw := srv.request(t, http.MethodPost, path, bytes.NewReader(body), h)
		all.add("ingress answers", raw)
		if status != want {
			t.Fatalf("POST %s: %d %s, want %d", path, status, raw, want)
		}
		if want == http.StatusAccepted {
			var out struct{ ID string }
			if err := json.Unmarshal(raw, &out); err != nil || out.ID == "" {
				t.Fatalf("POST %s answered %s", path, raw)
			}
			ids = append(ids, out.ID)
		}
	}
	for i, enc := range leakEncodings {
		want := http.StatusAccepted
		if enc.name == "text" {
			want = http.StatusBadRequest
		}
		body := enc.encode(leakFields(fmt.Sprintf("gen-%d", i)))
		mac := hex.EncodeToString(leakMAC(leakGenSecret, body))
		forbidden["gen MAC "+enc.name] = mac
		h := http.Header{"Content-Type": {enc.contentType}, "X-My-Mac": {mac}}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("relay:"+leakBasicPW)))
		post("/hooks/catch/gen?access_token="+leakQueryToken, body, h, want)

		body = enc.encode(leakFields(fmt.Sprintf("oc-%d", i)))
		ocMAC := base64.StdEncoding.EncodeToString(leakMAC(leakOCKey, body))
		forbidden["X-oc-hash "+enc.name] = ocMAC
		post("/hooks/catch/oc", body, http.Header{"Content-Type": {enc.contentType}, "X-Oc-Hash": {ocMAC}}, want)

		body = enc.encode(leakFields(fmt.Sprintf("tok-%d", i)))
		post("/hooks/catch/tok/"+leakToken, body, http.Header{"Content-Type": {enc.contentType}, "X-Relay-Key": {leakHeaderValue}}, want)
	}
	// URL-token attacks: a wrong token, a right one without its header, a
	// right one with the wrong method, and a right one on a longer path.
	tokBody := leakJSON(leakFields("tok-attack"))
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	post("/hooks/catch/tok/"+leakWrongToken, tokBody, jsonHdr, http.StatusNotFound)
	post("/hooks/catch/tok/"+leakToken, tokBody, jsonHdr, http.StatusUnauthorized)
	if status, _ := srv.request(t, http.MethodGet, "/hooks/catch/tok/"+leakToken, nil, nil); status != http.StatusMethodNotAllowed {
		t.Errorf("GET on the token URL: %d, want 405", status)
	}
	if status, _ := srv.request(t, http.MethodPost, "/hooks/catch/tok/"+leakToken+"/x;y?a=1;b=2", bytes.NewReader(tokBody), jsonHdr); status != http.StatusNotFound {
		t.Errorf("POST below the token URL: %d, want 404", status)
	}
	// A wrong MAC for each MAC hook.
	post("/hooks/catch/oc", tokBody, http.Header{"Content-Type": {"application/json"}, "X-Oc-Hash": {"AAAA"}}, http.StatusUnauthorized)

	// Every delivery settles (each path fails once, echoing the request).
	ctx := t.Context()
	for _, id := range ids {
		ev, err := st.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n := 3
		if ev.Hook == "tok" {
			n = 2
		}
		for _, d := range waitSettled(t, st, id, n) {
			if d.Status != store.DeliverySucceeded {
				t.Errorf("delivery %s of %s: %s (%s), want succeeded", d.Action, ev.Hook, d.Status, d.LastError)
			}
		}
	}
	if rc.count("/v1/cb") < 2*len(ids)/3 || rc.count("/oauth/token") < 3 {
		t.Fatalf("the receiver got %d callbacks and %d token requests: the scenario did not run", rc.count("/v1/cb"), rc.count("/oauth/token"))
	}

	// API, with a read-scoped key.
	apiGet := func(path string) map[string]any {
		status, out := srv.api(t, readKey, http.MethodGet, path, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s with a read key: %d %v", path, status, out)
		}
		all.add("API "+path, out)
		return out
	}
	hooks := apiGet("/hooks")
	apiGet("/events")
	apiGet("/deliveries")
	apiGet("/actions")
	for _, id := range ids {
		ev := apiGet("/events/" + id)
		for _, d := range list(ev, "deliveries") {
			apiGet("/deliveries/" + d["id"].(string))
		}
	}
	// The views really show the fields, masked: this test can fail.
	if !strings.Contains(fmt.Sprint(hooks), `x-relay-key"] == "[redacted]"`) {
		t.Errorf("GET /hooks rule text: %v", hooks)
	}
	if ev := apiGet("/events/" + ids[0]); fmt.Sprint(ev["payload"]) == "" || !strings.Contains(fmt.Sprint(ev), "ops@example.com") || !strings.Contains(fmt.Sprint(ev), "[redacted]") {
		t.Errorf("event view: %v", ev)
	}

	// CLI, against the server, as the read-scoped key.
	cliEnv := append([]string{"HOOKRELAY_SERVER=" + srv.url(""), "HOOKRELAY_API_KEY=" + readKey}, env...)
	all.add("CLI events list", cli(t, cliEnv, "events", "list"))
	all.add("CLI deliveries list", cli(t, cliEnv, "deliveries", "list"))
	all.add("CLI deliveries list --json", cli(t, cliEnv, "deliveries", "list", "--json"))
	all.add("CLI actions list --json", cli(t, cliEnv, "actions", "list", "--json"))
	for _, id := range ids {
		all.add("CLI events show", cli(t, cliEnv, "events", "show", id))
		all.add("CLI events show --json", cli(t, cliEnv, "events", "show", id, "--json"))
	}
	// The dry run renders every request, secrets and payload credentials included.
	dryEnv := append([]string{"DEMO_API_URL=" + rc.URL, "DEMO_ALLOW_NETWORKS=127.0.0.0/8", "DEMO_RETRY=1s"}, env...)
	for _, enc := range leakEncodings {
		for _, hook := range []string{"gen", "oc", "tok"} {
			file := filepath.Join(dir, "payload-"+enc.name)
			if err := os.WriteFile(file, enc.encode(leakFields("dry-"+enc.name)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, _ := cliResult(t, dryEnv, "test", "--config", cfgPath, "--hook", hook, "--payload", file, "--sign",
				"--header", "Content-Type: "+enc.contentType, "--header", "X-Relay-Key: "+leakHeaderValue)
			all.add("CLI test "+hook+" "+enc.name, out)
			if enc.name == "json" && hook == "gen" && !strings.Contains(out, "PATCH ") {
				t.Errorf("the dry run shows no request:\n%s", out)
			}
		}
	}

	if err := srv.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	logs := srv.output()
	all.add("log", logs)
	if !strings.Contains(logs, "level=DEBUG") {
		t.Error("the server did not log at debug level")
	}
	for _, want := range []string{"/hooks/catch/tok/" + leakToken[:4] + "…", "/hooks/catch/tok/" + leakWrongToken[:4] + "…"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log has no %q: the refusals were not logged with their path", want)
		}
	}

	for where, text := range all.texts {
		for what, secret := range forbidden {
			if strings.Contains(text.String(), secret) {
				t.Errorf("%s shows the %s %q", where, what, secret)
			}
		}
	}
}

// cliResult runs the hookrelay binary and returns stdout and stderr
// together, whatever its exit status.
func cliResult(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A secret that a reload brings in is masked in the log from then on: here
// a rule that fails on the payload quotes the payload's value in its
// error, and that value is the new hook's header credential.
func TestLogMasksSecretsOfReloadedConfig(t *testing.T) {
	const lateToken, lateValue = "late-url-token-0a1b2c3d4e", "late-header-value-5f6e7d8c"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hookrelay.yaml")
	writeFile(t, cfgPath, "hooks:\n  first:\n    verify: {scheme: none}\n    token: first-url-token-0000000\n")
	srv := start(t, serverOpts{store: "sqlite://" + filepath.Join(dir, "h.db"), api: "http://127.0.0.1:1", config: cfgPath,
		extra: []string{"HOOKRELAY_WATCH=1h", "HOOKRELAY_LOG_LEVEL=debug"}})

	writeFile(t, filepath.Join(dir, "rules.yaml"), "rules:\n  - name: numeric\n    when: int(body.note) > 0\n    actions: []\n")
	writeFile(t, cfgPath, "hooks:\n  first:\n    verify: {scheme: none}\n    token: first-url-token-0000000\n"+
		"  late:\n    verify: {scheme: none}\n    token: "+lateToken+"\n    auth:\n      header: {name: X-Late, value: "+lateValue+"}\n    rules: [rules.yaml]\n")
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, `msg="config reloaded" trigger=SIGHUP`, 1)

	body := []byte(`{"note":"` + lateValue + `"}`)
	status, raw := srv.request(t, http.MethodPost, "/hooks/catch/late/"+lateToken, bytes.NewReader(body),
		http.Header{"Content-Type": {"application/json"}, "X-Late": {lateValue}})
	if status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", status, raw)
	}
	srv.waitLog(t, "rule failed to evaluate", 1)
	if err := srv.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	logs := srv.output()
	for _, secret := range []string{lateToken, lateValue} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "[redacted]") {
		t.Errorf("the rule's error was not logged masked:\n%s", logs)
	}
}

// No MAC a sender sent, right or wrong, is shown: whoever holds one could
// replay the request. Every scheme of the demo (OnCloudWine, OrderCloud,
// GitHub, Stripe, Shopify, Slack, Standard Webhooks) is sent and read back
// through the API with a read-scoped key, the CLI and the debug log.
func TestMACHeadersNeverShown(t *testing.T) {
	storeURL := "sqlite://" + filepath.Join(t.TempDir(), "h.db")
	readKey := createKey(t, storeURL, "auditor", "read")
	rc := newReceiver(t)
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, extra: []string{"HOOKRELAY_LOG_LEVEL=debug"}})

	// macs are the values of the headers that carry a MAC.
	var macs []string
	var ids []string
	keep := func(h http.Header) {
		for k, vs := range h {
			switch strings.ToLower(k) {
			case "x-oncloudwine-signature", "x-oc-hash", "x-hub-signature-256", "stripe-signature",
				"x-shopify-hmac-sha256", "x-slack-signature", "webhook-signature":
				macs = append(macs, vs...)
			}
		}
	}
	post := func(hook string, body []byte, h http.Header, want int) {
		t.Helper()
		keep(h)
		status, out := srv.post(t, http.MethodPost, "/hooks/catch/"+hook, body, h)
		if status != want {
			t.Fatalf("POST %s: %d %v, want %d", hook, status, out, want)
		}
		if id, ok := out["id"].(string); ok {
			ids = append(ids, id)
		}
	}
	ocw := payload(t, "oncloudwine-contact-updated.json")
	post("oncloudwine", ocw, ocwSign(ocw), http.StatusAccepted)
	oc := payload(t, "ordercloud-buyer-user-created.json")
	post("ordercloud", oc, ocSign(oc), http.StatusAccepted)
	now := time.Now()
	for i, s := range senders() {
		body := payload(t, s.payload)
		post(s.hook, body, s.sign(t, body, now, 200+i), http.StatusAccepted)
		post(s.hook, body, wrongSignature(t, s, body, now), http.StatusUnauthorized)
	}
	if len(macs) < 12 || len(ids) != 7 {
		t.Fatalf("%d MACs sent, %d events accepted", len(macs), len(ids))
	}
	var shown strings.Builder
	env := []string{"HOOKRELAY_SERVER=" + srv.url(""), "HOOKRELAY_API_KEY=" + readKey}
	for _, id := range ids {
		status, ev := srv.api(t, readKey, http.MethodGet, "/events/"+id, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /events/%s: %d", id, status)
		}
		fmt.Fprintln(&shown, ev)
		if h, _ := ev["headers"].(map[string]any); len(h) == 0 {
			t.Errorf("event %s shows no headers", id)
		}
		shown.WriteString(cli(t, env, "events", "show", id, "--json"))
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	shown.WriteString(srv.output())
	for _, mac := range macs {
		// A Stripe or Standard Webhooks header holds a timestamp and
		// versions too: look for the MAC itself.
		for _, part := range strings.FieldsFunc(mac, func(r rune) bool { return r == ',' || r == ' ' || r == '=' }) {
			if len(part) >= 16 && strings.Contains(shown.String(), part) {
				t.Errorf("a MAC is shown: %q (of %q)", part, mac)
			}
		}
	}
}
