package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/hookrelay/hookrelay/store"
)

// browser starts headless Chromium for one test and returns its tab. In CI
// a missing Chromium fails the test; elsewhere the test is skipped.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("chromium is not installed: apt-get install chromium to run the dashboard's browser tests")
	}
	// Not t.TempDir: Chromium's helpers may still write in the profile for
	// a moment after the browser is gone, so its removal is retried and a
	// leftover is no failure.
	profile, err := os.MkdirTemp("", "hookrelay-chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-component-update", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it gets no deadline of its own.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// within runs browser steps with a generous deadline, failing the test
// with what was being done.
func within(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// signIn signs the browser in with key through the sign-in form.
func signIn(t *testing.T, ctx context.Context, srv *server, key string) {
	t.Helper()
	within(t, ctx, "sign in",
		chromedp.Navigate(srv.url("/ui/")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SetValue(chromedp.ID("key"), key),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("events")),
	)
}

// dashboardConfig is one hook, "in", whose events of kind "order" go to
// the receiver's /v1/orders and are dead after three failed attempts.
func dashboardConfig(t *testing.T) string {
	return relayConfig(t, `
  - name: orders
    when: body.kind == "order"
    actions: [notify]
`, `
  notify:
    method: POST
    url: ${DEMO_API_URL}/v1/orders
    body:
      id: "{{ body.id }}"
    retry: [50ms, 50ms]
`)
}

// TestDashboard drives the dashboard in a real headless Chromium against
// the real server on the embedded store, with a local receiver.
func TestDashboard(t *testing.T) {
	ctx := browser(t)
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t)
	rc.respond = func(path string, n int) int {
		if failing.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	storeURL := sqliteStore(t)
	operator := createKey(t, storeURL, "operator", "read,write,webhooks")
	viewer := createKey(t, storeURL, "viewer", "read")
	srv := start(t, serverOpts{store: storeURL, api: rc.URL, config: dashboardConfig(t)})
	st := openTestStore(t, storeURL)

	signIn(t, ctx, srv, operator)
	if who := value(t, ctx, "read who is signed in", chromedp.Text(chromedp.ID("who"))); !strings.Contains(who, "operator") {
		t.Fatalf("signed in as %q, want the operator key", who)
	}
	// The session cookie is HttpOnly: no script can read it.
	if c := value(t, ctx, "read document.cookie", chromedp.Evaluate[string](`document.cookie`)); strings.Contains(c, "hookrelay_session") {
		t.Fatalf("document.cookie = %q: the session cookie is readable by scripts", c)
	}

	t.Run("activity log shows a new event without reloading", func(t *testing.T) {
		within(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
		id := srv.sendEvent(t, map[string]any{"kind": "note", "text": "arrives while the page is open"})
		within(t, ctx, "wait for the new row", chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+id+`"]`)))
		if !value(t, ctx, "check the page was not reloaded", chromedp.Evaluate[bool](`window.notReloaded === true`)) {
			t.Fatal("the page was reloaded to show the new event")
		}
	})

	// Two orders that the receiver refuses until they are dead.
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMifQ.c2lnbmVkLWJ5LXRoZS1zZW5kZXI"
	order := func(id string) string {
		raw, _ := json.Marshal(map[string]any{"kind": "order", "id": id, "callback": map[string]any{
			"url": "https://shop.example/orders/" + id, "authorization": "Bearer " + token,
		}, "note": "call back with Bearer " + token})
		status, out := srv.post(t, http.MethodPost, relayHook, raw, http.Header{"Authorization": {"Bearer " + token}})
		evt, _ := out["id"].(string)
		if status != http.StatusAccepted || evt == "" {
			t.Fatalf("sending order %s: %d %v", id, status, out)
		}
		return evt
	}
	first, second := order("o-1"), order("o-2")
	dead1 := waitDelivery(t, st, first, store.DeliveryDead)
	dead2 := waitDelivery(t, st, second, store.DeliveryDead)

	t.Run("event page redacts the bearer token as the API does", func(t *testing.T) {
		within(t, ctx, "open the event", chromedp.Navigate(srv.url("/ui/events/"+first)), chromedp.WaitVisible(chromedp.ID("payload")))
		shown := value(t, ctx, "read the payload", chromedp.Text(chromedp.ID("payload")))
		headers := value(t, ctx, "read the headers", chromedp.Text(chromedp.ID("headers")))
		page := value(t, ctx, "read the page", chromedp.Text(chromedp.CSS("main")))
		for _, part := range []string{token, strings.Split(token, ".")[2]} {
			if strings.Contains(page, part) {
				t.Errorf("the event page shows the bearer token:\n%s", page)
			}
		}
		if !strings.Contains(shown, `"kind": "order"`) || !strings.Contains(shown, "\n  ") {
			t.Errorf("payload not shown as pretty JSON:\n%s", shown)
		}
		if !strings.Contains(headers, "authorization") {
			t.Errorf("headers table has no authorization line:\n%s", headers)
		}
		status, api := srv.api(t, operator, http.MethodGet, "/events/"+first, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /events/%s: %d %v", first, status, api)
		}
		var onPage any
		if err := json.Unmarshal([]byte(shown), &onPage); err != nil {
			t.Fatalf("the payload shown is not JSON: %v\n%s", err, shown)
		}
		if diff := cmp.Diff(api["payload"], onPage); diff != "" {
			t.Errorf("the page's payload differs from the API's (-api +page):\n%s", diff)
		}
		for _, want := range []string{"orders", dead1.ID, api["idempotency_key"].(string)} {
			if !strings.Contains(page, want) {
				t.Errorf("the event page does not show %q", want)
			}
		}
		// The trace: the rule with the field it read, and why each attempt
		// ended as it did.
		rulesShown := value(t, ctx, "read the rule trace", chromedp.Text(chromedp.ID("trace-rules")))
		for _, want := range []string{"orders", "matched", `body.kind was "order", wanted "order"`} {
			if !strings.Contains(rulesShown, want) {
				t.Errorf("the rule trace does not show %q:\n%s", want, rulesShown)
			}
		}
		attemptsShown := value(t, ctx, "read the attempt trace", chromedp.Text(chromedp.ID("trace-attempts")))
		for _, want := range []string{dead1.ID, "attempt 1 retried because of 500", "next try due", "attempt 3 failed for good because of 500",
			"dead because the last attempt of the retry schedule failed"} {
			if !strings.Contains(attemptsShown, want) {
				t.Errorf("the attempt trace does not show %q:\n%s", want, attemptsShown)
			}
		}
		if n := value(t, ctx, "look for Replay", chromedp.Evaluate[int](`document.querySelectorAll("#replay").length`)); n != 1 {
			t.Errorf("an operator sees %d Replay buttons, want 1", n)
		}
	})

	t.Run("retrying a dead delivery delivers it", func(t *testing.T) {
		within(t, ctx, "open the delivery",
			chromedp.Navigate(srv.url("/ui/deliveries/"+dead1.ID)),
			chromedp.WaitVisible(chromedp.ID("retry")))
		log := value(t, ctx, "read the attempt log", chromedp.Text(chromedp.CSS("main")))
		for _, want := range []string{"Attempt 3", "500", "POST " + rc.URL + "/v1/orders", "Then retrying (retry), next try due", "Then dead (last-attempt)"} {
			if !strings.Contains(log, want) {
				t.Errorf("the attempt log does not show %q:\n%s", want, log)
			}
		}
		before := len(rc.on("/v1/orders"))
		failing.Store(false)
		within(t, ctx, "retry", chromedp.Click(chromedp.ID("retry")), chromedp.WaitVisible(chromedp.ID("flash")))
		got := rc.waitFor(t, "/v1/orders", before+1)
		if !strings.Contains(string(got[len(got)-1].Body), `"o-1"`) {
			t.Errorf("the receiver got %s, want order o-1", got[len(got)-1].Body)
		}
		waitDelivery(t, st, first, store.DeliverySucceeded)
		within(t, ctx, "see it succeeded",
			chromedp.Navigate(srv.url("/ui/deliveries/"+dead1.ID)),
			chromedp.WaitVisible(chromedp.CSS(`#delivery-status.succeeded`)))
		failing.Store(true)
	})

	t.Run("a change from another origin is refused, even with the token", func(t *testing.T) {
		within(t, ctx, "open the dead delivery", chromedp.Navigate(srv.url("/ui/deliveries/"+dead2.ID)), chromedp.WaitVisible(chromedp.ID("retry")))
		csrf := value(t, ctx, "read the CSRF token", chromedp.Value(chromedp.CSS(`form.who input[name=csrf]`)))
		// Another port on the same address: the same site, so the
		// SameSite=Strict cookie goes along; the origin check must refuse.
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<form method="post" action="%s"><input name="csrf" value="%s"></form><script>document.forms[0].submit()</script>`,
				html.EscapeString(srv.url("/ui/deliveries/"+dead2.ID+"/retry")), html.EscapeString(csrf))
		}))
		defer other.Close()
		within(t, ctx, "visit the other origin", chromedp.Navigate(other.URL), chromedp.WaitVisible(chromedp.ID("error")))
		if msg := value(t, ctx, "read the answer", chromedp.Text(chromedp.ID("error"))); !strings.Contains(msg, "cross-origin request refused") {
			t.Errorf("a cross-origin POST was answered %q", msg)
		}
		if d, err := st.Delivery(context.Background(), dead2.ID); err != nil || d.Status != store.DeliveryDead || d.Attempts != dead2.Attempts {
			t.Errorf("after a cross-origin POST the delivery is %+v (%v), want it dead and untouched", d, err)
		}
	})

	t.Run("test ping, pause and resume from their pages", func(t *testing.T) {
		within(t, ctx, "send a test ping",
			chromedp.Navigate(srv.url("/ui/hooks")),
			chromedp.Click(chromedp.CSS(`tr[data-hook="in"] button`)),
			chromedp.WaitVisible(chromedp.ID("flash")))
		if msg := value(t, ctx, "read the answer", chromedp.Text(chromedp.ID("flash"))); !strings.Contains(msg, "test ping to in: accepted") {
			t.Errorf("test ping answered %q", msg)
		}
		within(t, ctx, "pause the action",
			chromedp.Navigate(srv.url("/ui/actions")),
			chromedp.Click(chromedp.CSS(`tr[data-action="notify"] button`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-action="notify"] .status.paused`)))
		if !srv.action(t, operator, "notify").Paused {
			t.Error("the action shows paused but the API says it is not")
		}
		within(t, ctx, "resume the action",
			chromedp.Click(chromedp.CSS(`tr[data-action="notify"] button`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-action="notify"] .status.running`)))
		if srv.action(t, operator, "notify").Paused {
			t.Error("the action shows running but the API says it is paused")
		}
	})

	t.Run("activity log filters by status and time", func(t *testing.T) {
		count := func(query string) (orders, all int) {
			t.Helper()
			within(t, ctx, "filter "+query, chromedp.Navigate(srv.url("/ui/"+query)), chromedp.WaitVisible(chromedp.ID("events")))
			n := value(t, ctx, "count rows", chromedp.Evaluate[[]int](`[document.querySelectorAll('#events tr[data-id="`+first+`"]').length, document.querySelectorAll("#events tr[data-id]").length]`))
			return n[0], n[1]
		}
		if o, all := count("?status=ignored"); o != 0 || all == 0 {
			t.Errorf("status=ignored shows the accepted order %d times among %d rows", o, all)
		}
		if o, _ := count("?status=accepted&hook=in"); o != 1 {
			t.Errorf("status=accepted does not show the order")
		}
		future := time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04")
		if _, all := count("?since=" + future); all != 0 {
			t.Errorf("since an hour from now shows %d events", all)
		}
		if o, _ := count("?until=" + future); o != 1 {
			t.Errorf("until an hour from now does not show the order")
		}
	})

	t.Run("screenshot of the activity log", func(t *testing.T) {
		within(t, ctx, "open the activity log", chromedp.Navigate(srv.url("/ui/")),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+second+`"]`)))
		png := value(t, ctx, "take a screenshot", chromedp.FullScreenshot(100))
		out := filepath.Join(t.ArtifactDir(), "dashboard.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", out)
		// CI keeps it under docs/ as the run's artifact, which is also how
		// the README's picture is made (HOOKRELAY_UPDATE_SCREENSHOT=1).
		if os.Getenv("CI") == "true" || os.Getenv("HOOKRELAY_UPDATE_SCREENSHOT") != "" {
			t.Logf("screenshot: docs/dashboard.png")
			if err := os.WriteFile("../../docs/dashboard.png", png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("a read-only key sees no changes and cannot forge one", func(t *testing.T) {
		within(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.ID("key")))
		signIn(t, ctx, srv, viewer)
		within(t, ctx, "open the dead delivery", chromedp.Navigate(srv.url("/ui/deliveries/"+dead2.ID)), chromedp.WaitVisible(chromedp.ID("delivery-status")))
		for _, page := range []string{"/ui/deliveries/" + dead2.ID, "/ui/events/" + second, "/ui/dead", "/ui/actions", "/ui/hooks"} {
			within(t, ctx, "open "+page, chromedp.Navigate(srv.url(page)), chromedp.WaitVisible(chromedp.CSS("main h1")))
			n := value(t, ctx, "count change buttons", chromedp.Evaluate[int](`document.querySelectorAll("main form[method=post]").length`))
			if n != 0 {
				html := value(t, ctx, "read the page", chromedp.OuterHTML(chromedp.CSS("main")))
				t.Errorf("a read-only key is offered %d changes on %s:\n%s", n, page, html)
			}
		}
		// Forged from the page itself: same origin, the session's own CSRF
		// token (from the sign-out form). The API refuses the read-only key.
		forge := func(path string, withToken bool) (int, string) {
			t.Helper()
			token := `""`
			if withToken {
				token = `document.querySelector("form.who input[name=csrf]").value`
			}
			js := fmt.Sprintf(`fetch(%q, {method: "POST", body: new URLSearchParams({csrf: %s}), redirect: "manual"}).then(async r => ({status: r.status, text: await r.text()}))`, path, token)
			r := value(t, ctx, "forge a POST to "+path, chromedp.Evaluate[struct {
				Status int
				Text   string
			}](js, chromedp.EvalAwaitPromise))
			return r.Status, r.Text
		}
		received := len(rc.on("/v1/orders"))
		for _, c := range []struct {
			path      string
			withToken bool
		}{
			{"/ui/deliveries/" + url.PathEscape(dead2.ID) + "/retry", true},
			{"/ui/deliveries/" + url.PathEscape(dead2.ID) + "/retry", false},
			{"/ui/events/" + url.PathEscape(second) + "/replay", true},
			{"/ui/dead/retry", true},
			{"/ui/actions/notify/pause", true},
		} {
			// With the token, the API's scope check refuses it; without,
			// the dashboard does before asking the API.
			want := "lacks the write scope"
			if !c.withToken {
				want = "did not come from this dashboard"
			}
			if status, text := forge(c.path, c.withToken); status != http.StatusForbidden || !strings.Contains(text, want) {
				t.Errorf("forged POST %s (token %t) answered %d, want 403 saying %q:\n%s", c.path, c.withToken, status, want, text)
			}
		}
		ds, err := st.Deliveries(context.Background(), second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Status != store.DeliveryDead || ds[0].Attempts != dead2.Attempts {
			t.Errorf("after forged POSTs the deliveries of %s are %+v, want the one dead delivery untouched", second, ds)
		}
		if n := len(rc.on("/v1/orders")); n != received {
			t.Errorf("the receiver got %d more requests after forged POSTs", n-received)
		}
		if a := srv.action(t, operator, "notify"); a.Paused {
			t.Error("a forged POST paused the action")
		}
	})
}
