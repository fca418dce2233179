package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
)

// apiError is the admin API's answer to a call it refused.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// call makes one admin API call in process, as the browser's request with
// the session's key, and decodes the answer into out. The API's own
// authentication, scope check and redaction apply to it as to any client.
func (d *Dashboard) call(r *http.Request, secret, method, path string, query url.Values, out any) error {
	target := "/api/v1" + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req := httptest.NewRequestWithContext(r.Context(), method, target, http.NoBody)
	// The API builds catch URLs from the host the operator reached.
	req.Host, req.TLS, req.RemoteAddr = r.Host, r.TLS, r.RemoteAddr
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	d.o.API.ServeHTTP(w, req)
	body := w.Body.Bytes()
	if w.Code < 200 || w.Code > 299 {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(w.Code)
		}
		return &apiError{w.Code, e.Error}
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	return dec.Decode(out)
}

// status is the HTTP status an error from call maps to.
func status(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return http.StatusBadGateway
}
