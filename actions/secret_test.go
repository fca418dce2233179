package actions

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	userToken    = "ut-elevated-0123456789"
	clientSecret = "cs-very-secret-9876543210"
	accessToken  = "at-issued-5555555555"
)

// echo answers with everything it was sent, as a careless receiver or a
// debugging endpoint would.
func echo(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s %s\n", r.Method, r.URL)
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %s\n", k, strings.Join(v, ", "))
		}
	}
}

func TestResultNeverHoldsASecret(t *testing.T) {
	tokenServer := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if _, pw, _ := r.BasicAuth(); pw != clientSecret && r.PostForm.Get("client_secret") != clientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"detail":"expected %s"}`, clientSecret)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, accessToken)
	})
	badTokenServer := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "client secret %s rejected", clientSecret)
	})
	closed := newReceiver(t, nil)
	closed.Close()

	bearer := &AuthSpec{Bearer: "{{ body.UserToken }}"}
	oauth := func(tokenURL string) *AuthSpec {
		return &AuthSpec{OAuth2: &OAuth2Spec{TokenURL: tokenURL, ClientID: "hookrelay", ClientSecret: clientSecret}}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		spec    func(base string) Spec
		wantErr bool
	}{
		{name: "echoed on success", handler: echo(200), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: bearer} }},
		{name: "echoed on failure", handler: echo(500), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: bearer} }, wantErr: true},
		{name: "redirect names it", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login?token="+userToken, http.StatusFound)
		}, spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: bearer} }, wantErr: true},
		{name: "in the URL's query", handler: echo(500), spec: func(b string) Spec {
			return Spec{URL: b + "/x?access_token={{ body.UserToken }}", Auth: bearer}
		}, wantErr: true},
		{name: "in the URL's path", handler: echo(200), spec: func(b string) Spec { return Spec{URL: b + "/u/{{ body.UserToken }}", Auth: bearer} }},
		{name: "in a header with a harmless name", handler: echo(200), spec: func(b string) Spec {
			return Spec{URL: b + "/x", Headers: map[string]string{"X-Forwarded-User": "{{ body.UserToken }}"}, Auth: bearer}
		}},
		{name: "in the URL of a transport error", spec: func(string) Spec {
			return Spec{URL: closed.URL + "/x?access_token={{ body.UserToken }}", Auth: bearer}
		}, wantErr: true},
		{name: "in the URL of a timeout", handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, spec: func(b string) Spec {
			return Spec{URL: b + "/x/{{ body.UserToken }}", Auth: bearer, Timeout: 50 * time.Millisecond}
		}, wantErr: true},
		{name: "render error", spec: func(b string) Spec {
			return Spec{URL: b + "/x", Headers: map[string]string{"X-T": "{{ body.UserToken + '\\n' }}"}, Auth: bearer}
		}, wantErr: true},
		{name: "oauth2 access token echoed", handler: echo(200), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: oauth(tokenServer.URL)} }},
		{name: "oauth2 token refused", handler: echo(200), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: oauth(badTokenServer.URL)} }, wantErr: true},
		{name: "oauth2 token endpoint down", handler: echo(200), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: oauth(closed.URL + "/token")} }, wantErr: true},
		{name: "oauth2 receiver fails", handler: echo(401), spec: func(b string) Spec { return Spec{URL: b + "/x", Auth: oauth(tokenServer.URL)} }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.handler)
			res := newTestClient().Do(context.Background(), mustCompile(t, tt.spec(rc.URL)), env(t, `{"UserToken":"`+userToken+`"}`), "dlv_1")
			if (res.Err != nil) != tt.wantErr {
				t.Fatalf("Err = %v, want an error: %v", res.Err, tt.wantErr)
			}
			text := resultText(res)
			for _, secret := range []string{userToken, clientSecret, accessToken} {
				if strings.Contains(text, secret) {
					t.Errorf("the result holds %s:\n%s", secret, text)
				}
			}
		})
	}
}

func TestSecretCutByTheResponseLimitIsStillRemoved(t *testing.T) {
	for _, pad := range []int{4096 - 10, 4096 - len(userToken) + 1, 4095} {
		t.Run(fmt.Sprint(pad), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, strings.Repeat("x", pad)+userToken+strings.Repeat("y", 100))
			})
			a := mustCompile(t, Spec{URL: rc.URL + "/", Auth: &AuthSpec{Bearer: "{{ body.UserToken }}"}})
			res := newTestClient().Do(context.Background(), a, env(t, `{"UserToken":"`+userToken+`"}`), "k")
			if len(res.ResponseBody) != 4096 {
				t.Errorf("ResponseBody has %d bytes", len(res.ResponseBody))
			}
			if tail := res.ResponseBody[pad:]; strings.Contains(tail, userToken[:min(len(tail), len(userToken))]) {
				t.Errorf("ResponseBody ends with part of the token: %q", tail)
			}
		})
	}
}
