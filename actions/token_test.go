package actions

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// jwt builds a JWS compact token around claims (a JSON object's text); the
// signature is not a real one, as hookrelay never checks it.
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("signature"))
}

func TestTokenExpiry(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name string
		tok  string
		want time.Time // zero: no expiry read
	}{
		{"exp", jwt(`{"sub":"u1","exp":1700000000}`), time.Unix(1700000000, 0)},
		{"fractional exp", jwt(`{"exp":1700000000.5}`), time.Unix(1700000000, 5e8)},
		{"exponent", jwt(`{"exp":1.7e9}`), time.Unix(1700000000, 0)},
		{"negative exp", jwt(`{"exp":-5}`), time.Unix(-5, 0)},
		{"padded segments", enc([]byte(`{"alg":"none"}`)) + "==." + enc([]byte(`{"exp":1700000000}`)) + "=.", time.Unix(1700000000, 0)},
		{"unsecured, empty signature", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"exp":1700000000}`)) + ".", time.Unix(1700000000, 0)},
		{"no exp", jwt(`{"sub":"u1","iat":1700000000}`), time.Time{}},
		{"exp is a string", jwt(`{"exp":"1700000000"}`), time.Time{}},
		{"exp is null", jwt(`{"exp":null}`), time.Time{}},
		{"exp in another case", jwt(`{"EXP":1700000000,"Exp":1700000000}`), time.Time{}},
		{"exp beyond any date", jwt(`{"exp":1e300}`), time.Time{}},
		{"claims not an object", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`[1700000000]`)) + ".sig", time.Time{}},
		{"claims null", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`null`)) + ".sig", time.Time{}},
		{"header not JSON", enc([]byte(`alg`)) + "." + enc([]byte(`{"exp":1700000000}`)) + ".sig", time.Time{}},
		{"claims not base64url", enc([]byte(`{"alg":"none"}`)) + ".eyJ+ZXhwIjox.sig", time.Time{}},
		{"two segments", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"exp":1700000000}`)), time.Time{}},
		{"four segments", "x." + jwt(`{"exp":1700000000}`), time.Time{}},
		{"JWE, five segments", jwt(`{"exp":1700000000}`) + ".a.b", time.Time{}},
		{"opaque token", "crm-api-token-6c21", time.Time{}},
		{"empty", "", time.Time{}},
		// The demo's OrderCloud UserToken: a JWT without exp.
		{"ordercloud demo", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c3IiOiJ3ZWJob29rLWVsZXZhdGVkIiwiY2lkIjoiM2Q0ZTVmNmEiLCJyb2xlIjpbIkJ1eWVyVXNlckFkbWluIiwiQnV5ZXJBZG1pbiJdfQ.c2lnbmF0dXJlLWRlbW8", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tokenExpiry(tt.tok)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("tokenExpiry = %v, %t; want %v", got, ok, tt.want)
			}
		})
	}
}

// bearerSpec sends the payload's token as the action's bearer token.
func bearerSpec(base string) Spec {
	return Spec{Method: "PATCH", URL: base + "/v1/buyers/b1/users/u1", Auth: &AuthSpec{Bearer: "{{ body.UserToken }}"}, Body: map[string]any{"LastName": "X"}}
}

func tokenBody(tok string) string { return fmt.Sprintf(`{"UserToken":%q}`, tok) }

func TestDoExpiredJWTIsNotSent(t *testing.T) {
	rc := newReceiver(t, nil)
	a := mustCompile(t, bearerSpec(rc.URL))
	exp := fixedNow.Add(-time.Second)
	tok := jwt(fmt.Sprintf(`{"usr":"webhook-elevated","exp":%d}`, exp.Unix()))
	res := newTestClient().Do(context.Background(), a, env(t, tokenBody(tok)), "dlv_1")

	if n := len(rc.Hits()); n != 0 {
		t.Fatalf("receiver got %d requests for an expired token, want 0", n)
	}
	var te *TokenExpiredError
	if !errors.As(res.Err, &te) || !te.At.Equal(exp) {
		t.Fatalf("Err = %#v, want a *TokenExpiredError at %v", res.Err, exp)
	}
	if !errors.Is(res.Err, ErrPermanent) {
		t.Error("an expired token is not a permanent error")
	}
	if want := "token expired at 2024-05-06T07:08:08Z"; res.Err.Error() != want {
		t.Errorf("Err = %q, want %q", res.Err, want)
	}
	if res.StatusCode != 0 || res.Trace != nil {
		t.Errorf("status %d, trace %v: want none, nothing was sent", res.StatusCode, res.Trace)
	}
	// The attempt still says what would have gone where, without the token.
	if res.Method != "PATCH" || res.URL != rc.URL+"/v1/buyers/b1/users/u1" || res.RequestHeaders["Authorization"] != "[redacted]" {
		t.Errorf("result = %s %s %v", res.Method, res.URL, res.RequestHeaders)
	}
	if strings.Contains(resultText(res), tok) {
		t.Errorf("the token shows in the result: %s", resultText(res))
	}
}

func TestDoJWTIsJudgedByTheClientsClock(t *testing.T) {
	exp := time.Unix(fixedNow.Unix(), 0)
	tests := []struct {
		name string
		tok  string
		now  time.Time
		sent bool
	}{
		{"a second before exp", jwt(fmt.Sprintf(`{"exp":%d}`, exp.Unix())), exp.Add(-time.Second), true},
		{"a nanosecond before exp", jwt(fmt.Sprintf(`{"exp":%d}`, exp.Unix())), exp.Add(-time.Nanosecond), true},
		{"at exp", jwt(fmt.Sprintf(`{"exp":%d}`, exp.Unix())), exp, false},
		{"an hour after exp", jwt(fmt.Sprintf(`{"exp":%d}`, exp.Unix())), exp.Add(time.Hour), false},
		{"no exp", jwt(`{"sub":"u1"}`), exp.Add(100 * 365 * 24 * time.Hour), true},
		{"not a JWT", "ut-elevated-0123456789", exp, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			c := NewClient(ClientOptions{Now: func() time.Time { return tt.now }})
			res := c.Do(context.Background(), mustCompile(t, bearerSpec(rc.URL)), env(t, tokenBody(tt.tok)), "k")
			sent := len(rc.Hits()) == 1
			if sent != tt.sent {
				t.Fatalf("sent = %t (err %v), want %t", sent, res.Err, tt.sent)
			}
			if sent {
				if res.Err != nil || rc.only(t).Header.Get("Authorization") != "Bearer "+tt.tok {
					t.Errorf("Err = %v, Authorization = %q", res.Err, rc.only(t).Header.Get("Authorization"))
				}
			} else if !errors.Is(res.Err, ErrPermanent) || !strings.HasPrefix(res.Err.Error(), "token expired at ") {
				t.Errorf("Err = %v, want a permanent token expiry", res.Err)
			}
		})
	}
}

// An Authorization header written in the action's headers is judged as
// auth.bearer is, whatever the case of its scheme.
func TestDoExpiredJWTInAHeaderTemplate(t *testing.T) {
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		t.Run(scheme, func(t *testing.T) {
			rc := newReceiver(t, nil)
			a := mustCompile(t, Spec{URL: rc.URL + "/x", Headers: map[string]string{"Authorization": scheme + " {{ body.UserToken }}"}})
			tok := jwt(fmt.Sprintf(`{"exp":%d}`, fixedNow.Add(-time.Minute).Unix()))
			res := newTestClient().Do(context.Background(), a, env(t, tokenBody(tok)), "k")
			if n := len(rc.Hits()); n != 0 || !errors.Is(res.Err, ErrPermanent) {
				t.Errorf("%d requests, Err %v; want none and a permanent error", n, res.Err)
			}
		})
	}
	// Another scheme carries no bearer token to judge.
	rc := newReceiver(t, nil)
	a := mustCompile(t, Spec{URL: rc.URL + "/x", Headers: map[string]string{"Authorization": "Token {{ body.UserToken }}"}})
	tok := jwt(fmt.Sprintf(`{"exp":%d}`, fixedNow.Add(-time.Minute).Unix()))
	if res := newTestClient().Do(context.Background(), a, env(t, tokenBody(tok)), "k"); res.Err != nil || len(rc.Hits()) != 1 {
		t.Errorf("Token scheme: Err %v, %d requests; want it sent", res.Err, len(rc.Hits()))
	}
}

// A token that expires between two attempts is sent by the first and not
// by the second: exp is read at each attempt.
func TestDoTokenExpiresBetweenAttempts(t *testing.T) {
	rc := newReceiver(t, answer(500, nil))
	var mu sync.Mutex
	now := fixedNow
	c := NewClient(ClientOptions{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	a := mustCompile(t, bearerSpec(rc.URL))
	exp := fixedNow.Add(30 * time.Second).Truncate(time.Second)
	e := env(t, tokenBody(jwt(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))))

	res := c.Do(context.Background(), a, e, "k")
	if res.StatusCode != 500 || errors.Is(res.Err, ErrPermanent) || len(rc.Hits()) != 1 {
		t.Fatalf("first attempt: %d %v, %d requests; want a retryable 500", res.StatusCode, res.Err, len(rc.Hits()))
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	res = c.Do(context.Background(), a, e, "k")
	if n := len(rc.Hits()); n != 1 {
		t.Errorf("second attempt sent a request (%d in all)", n)
	}
	if want := "token expired at " + exp.UTC().Format(time.RFC3339); res.Err == nil || res.Err.Error() != want || !errors.Is(res.Err, ErrPermanent) {
		t.Errorf("second attempt: Err = %v, want permanent %q", res.Err, want)
	}
}
