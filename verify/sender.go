package verify

import (
	"net/http"
	"time"
)

// BasicAuth is a user name and password a hook requires in HTTP basic
// authentication (a hook's auth.basic).
type BasicAuth struct{ Username, Password string }

// HeaderToken is a header a hook requires to carry exactly Value (a hook's
// auth.header).
type HeaderToken struct{ Name, Value string }

// Sender simulates a hook's real sender: it signs a body with the hook's
// own secret and adds the credentials the hook requires. It is the one
// place that does so: the CLI's dry run and `sign`, and the admin API's
// test ping, all sign through it.
type Sender struct {
	Verifier Verifier     // nil signs nothing
	Basic    *BasicAuth   // nil when the hook requires none
	Header   *HeaderToken // nil when the hook requires none
}

// Sign sets on h what the sender would send with body at now: the
// signature headers, the basic credentials and the header token.
func (s Sender) Sign(h http.Header, body []byte, now time.Time) {
	if s.Verifier != nil {
		for k, vs := range s.Verifier.Sign(body, now) {
			h[k] = vs
		}
	}
	if s.Basic != nil {
		r := http.Request{Header: h}
		r.SetBasicAuth(s.Basic.Username, s.Basic.Password)
	}
	if s.Header != nil {
		h.Set(s.Header.Name, s.Header.Value)
	}
}
