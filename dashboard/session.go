package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// cookieName holds a session id; the API key it stands for stays on the
// server.
const cookieName = "hookrelay_session"

// session is one signed-in browser. The key's secret is kept in this
// process's memory only: the cookie carries a random id, so a leaked cookie
// ends with the process and never reveals the key.
type session struct {
	id      string
	secret  string // the API key every call is made with
	key     admin.KeyView
	csrf    string // the token every form carries
	expires time.Time

	mu    sync.Mutex
	flash string // a message for the next page, after a change
}

func (s *session) setFlash(msg string) {
	s.mu.Lock()
	s.flash = msg
	s.mu.Unlock()
}

func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := s.flash
	s.flash = ""
	return msg
}

// sessions are the signed-in browsers of this process.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	now func() time.Time
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (ss *sessions) create(secret string, key admin.KeyView) *session {
	now := ss.now()
	s := &session{id: randomToken(), secret: secret, key: key, csrf: randomToken(), expires: now.Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, old := range ss.m {
		if now.After(old.expires) {
			delete(ss.m, id)
		}
	}
	ss.m[s.id] = s
	return s
}

// get is the session the request's cookie names, nil when there is none or
// it has expired.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil {
		return nil
	}
	if ss.now().After(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	return s
}

func (ss *sessions) end(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
}

// checkCSRF compares a form's token with the session's in constant time.
func (s *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// cookie is the session cookie: Secure always (browsers keep such a cookie
// from http://localhost and http://127.0.0.1 too, so a local operator can
// sign in without TLS), HttpOnly, and SameSite=Strict so that no other
// site's page can send it.
func (s *session) cookie() *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: s.id, Path: "/ui/", Expires: s.expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

func clearedCookie() *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}
