package actions

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/hookrelay/hookrelay/redact"
)

// hopByHop are the headers that describe one connection, not the message:
// they never travel past the next hop (RFC 9110 §7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true,
}

// setByHookrelay are headers the request gets from hookrelay itself.
var setByHookrelay = map[string]string{
	"Host":             "it is the new request's own, taken from the URL",
	"Content-Length":   "it is the new request's own, computed from the body sent",
	"Idempotency-Key":  "hookrelay sets it to the delivery id",
	"User-Agent":       "hookrelay sends its own",
	"Content-Type":     "it follows the body sent: body_raw forwards the event's own, body: is sent as JSON, a headers: entry sets another",
	"Content-Encoding": "the body is sent as it is stored, decoded",
}

// compileForward checks the names of forward_headers. Credentials are
// refused: passing on the sender's signature or token would hand it to a
// third party, who could replay it to this gateway.
func (a *Action) compileForward(names []string) error {
	seen := map[string]bool{}
	for i, n := range names {
		field := "forward_headers." + strconv.Itoa(i)
		canon := http.CanonicalHeaderKey(strings.TrimSpace(n))
		switch {
		case !httpguts.ValidHeaderFieldName(strings.TrimSpace(n)):
			return &FieldError{Field: field, Err: fmt.Errorf("%q is not a valid header name", n)}
		case hopByHop[canon] || (strings.HasPrefix(canon, "Proxy-") && !redact.Sensitive(canon)):
			return &FieldError{Field: field, Err: fmt.Errorf("%s is a hop-by-hop header: it describes the connection it came on, not the event, and is never forwarded", canon)}
		case redact.Sensitive(canon):
			return &FieldError{Field: field, Err: fmt.Errorf("%s carries a credential (a signature, token or cookie): forwarding it would hand it to the receiver, who could replay it; sign the request with sign: instead", canon)}
		case seen[canon]:
			return &FieldError{Field: field, Err: fmt.Errorf("%s is named twice", canon)}
		}
		if why, ok := setByHookrelay[canon]; ok {
			return &FieldError{Field: field, Err: fmt.Errorf("%s cannot be forwarded: %s", canon, why)}
		}
		if a.sign != nil {
			for _, h := range a.sign.headers() {
				if h == canon {
					return &FieldError{Field: field, Err: fmt.Errorf("%s is set by sign: at each attempt", canon)}
				}
			}
		}
		seen[canon] = true
		a.forward = append(a.forward, canon)
	}
	return nil
}

// ForwardHeaders are the inbound headers the action passes on, canonical.
func (a *Action) ForwardHeaders() []string { return append([]string(nil), a.forward...) }
