package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

//go:embed assets templates
var files embed.FS

// Options wire the dashboard to the rest of the process.
type Options struct {
	// API is the admin API, serving /api/v1: every page is made of its
	// answers to the signed-in key.
	API http.Handler
	// SessionTTL is how long a sign-in lasts; 12 hours when zero.
	SessionTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Dashboard serves /ui/.
type Dashboard struct {
	o        Options
	log      *slog.Logger
	sessions *sessions
	pages    map[string]*template.Template
}

// New returns the dashboard; it panics if its embedded templates do not
// parse, which the package's tests catch.
func New(o Options) *Dashboard {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Dashboard{o: o, log: log, pages: map[string]*template.Template{},
		sessions: &sessions{m: map[string]*session{}, ttl: o.SessionTTL, now: o.Now}}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		d.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", n))
	}
	return d
}

// Handler serves the dashboard under /ui/.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(files, "assets")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/signin", d.signinPage)
	mux.HandleFunc("POST /ui/signin", d.signin)
	mux.HandleFunc("POST /ui/signout", d.signout)

	mux.HandleFunc("GET /ui/{$}", d.page(d.activity))
	mux.HandleFunc("GET /ui/rows", d.page(d.activityRows))
	mux.HandleFunc("GET /ui/events/{id}", d.page(d.event))
	mux.HandleFunc("POST /ui/events/{id}/replay", d.change(d.replay))
	mux.HandleFunc("GET /ui/deliveries/{id}", d.page(d.delivery))
	mux.HandleFunc("POST /ui/deliveries/{id}/retry", d.change(d.retry))
	mux.HandleFunc("GET /ui/dead", d.page(d.dead))
	mux.HandleFunc("POST /ui/dead/retry", d.change(d.retryDead))
	mux.HandleFunc("GET /ui/actions", d.page(d.actions))
	mux.HandleFunc("POST /ui/actions/{name}/{verb}", d.change(d.switchAction))
	mux.HandleFunc("GET /ui/hooks", d.page(d.hooks))
	mux.HandleFunc("POST /ui/hooks/{id}/test", d.change(d.testHook))
	mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		d.render(w, r, http.StatusNotFound, "error", view{Error: "no such page"})
	})

	// Changes from another site's page are refused by the browser's own
	// Sec-Fetch-Site or Origin, before any token is looked at.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.render(w, r, http.StatusForbidden, "error", view{Error: "cross-origin request refused"})
	}))
	return headers(cop.Handler(mux))
}

// headers sets what every answer carries: no caching of pages that show
// events, no framing, and only this origin's scripts and styles.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// view is what a page template gets.
type view struct {
	Title   string
	Nav     string
	Key     *admin.KeyView
	CSRF    string
	Flash   string
	Error   string
	Data    any
	Filters url.Values
}

// Can reports whether the signed-in key may call the admin route, so that a
// page offers only what the API would do for it.
func (v view) Can(method, pattern string) bool {
	return v.Key != nil && admin.Allows(v.Key.Scopes, method, pattern)
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		case *time.Time:
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		}
		return ""
	},
	"excerpt": func(s string) string {
		const most = 2048
		if len(s) <= most {
			return s
		}
		cut := most
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + " …"
	},
	"query": func(v url.Values, set ...string) string {
		q := url.Values{}
		for k, vs := range v {
			q[k] = vs
		}
		for i := 0; i+1 < len(set); i += 2 {
			if set[i+1] == "" {
				q.Del(set[i])
			} else {
				q.Set(set[i], set[i+1])
			}
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	},
	"join": strings.Join,
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t := d.pages[name]
	var buf bytes.Buffer
	tmpl := "layout.html"
	if v.Nav == "fragment" {
		tmpl = "rows"
	}
	if err := t.ExecuteTemplate(&buf, tmpl, v); err != nil {
		d.log.Error("dashboard page failed", "page", name, "error", err)
		http.Error(w, "page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageFunc fills a page's view from the API; a non-nil error is shown on
// the page with the API's status.
type pageFunc func(r *http.Request, s *session, v *view) (name string, err error)

// page serves a page to a signed-in browser and sends any other to sign in.
func (d *Dashboard) page(f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.sessions.get(r)
		if s == nil {
			if r.URL.Path == "/ui/rows" {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			to := "/ui/signin"
			if r.URL.Query().Has("signed-in") {
				to += "?again=1"
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		filters := r.URL.Query()
		filters.Del("signed-in")
		v := view{Key: &s.key, CSRF: s.csrf, Flash: s.takeFlash(), Filters: filters}
		name, err := f(r, s, &v)
		if d.signedOut(w, r, s, err) {
			return
		}
		code := http.StatusOK
		if err != nil && v.Nav == "fragment" {
			http.Error(w, err.Error(), status(err))
			return
		}
		if err != nil {
			code, v.Error = status(err), err.Error()
			if name == "" {
				name = "error"
			}
		}
		d.render(w, r, code, name, v)
	}
}

// signedOut ends the session when the API no longer takes its key (it was
// revoked) and sends the browser to sign in.
func (d *Dashboard) signedOut(w http.ResponseWriter, r *http.Request, s *session, err error) bool {
	if err == nil || status(err) != http.StatusUnauthorized {
		return false
	}
	d.sessions.end(s)
	http.SetCookie(w, clearedCookie())
	if r.Method == http.MethodGet && r.URL.Path == "/ui/rows" {
		http.Error(w, "signed out", http.StatusUnauthorized)
		return true
	}
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
	return true
}

// changeFunc makes one change through the API and says where to go next
// and what to tell the operator there.
type changeFunc func(r *http.Request, s *session) (next, msg string, err error)

// change serves a form's POST: a signed-in session and its CSRF token are
// required; the API decides whether the key may make the change, and a
// refusal is shown with the API's status.
func (d *Dashboard) change(f changeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		s := d.sessions.get(r)
		if s == nil {
			d.render(w, r, http.StatusForbidden, "error", view{Error: "not signed in: sign in again"})
			return
		}
		if !s.checkCSRF(r.PostFormValue("csrf")) {
			d.render(w, r, http.StatusForbidden, "error", view{Key: &s.key, CSRF: s.csrf, Error: "this form has expired or did not come from this dashboard: reload the page and try again"})
			return
		}
		next, msg, err := f(r, s)
		if d.signedOut(w, r, s, err) {
			return
		}
		if err != nil {
			d.render(w, r, status(err), "error", view{Key: &s.key, CSRF: s.csrf, Error: err.Error()})
			return
		}
		if msg != "" {
			s.setFlash(msg)
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

func (d *Dashboard) signinPage(w http.ResponseWriter, r *http.Request) {
	if d.sessions.get(r) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	v := view{Title: "Sign in"}
	if r.URL.Query().Has("again") {
		// The browser came back without the cookie it was just given.
		v.Error = "your browser did not keep the session cookie, which is Secure: open the dashboard over https, or on localhost or 127.0.0.1"
	}
	d.render(w, r, http.StatusOK, "signin", v)
}

func (d *Dashboard) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	secret := strings.TrimSpace(r.PostFormValue("key"))
	var key admin.KeyView
	if err := d.call(r, secret, http.MethodGet, "/key", nil, &key); err != nil {
		msg := "this API key is not valid or was revoked"
		if status(err) != http.StatusUnauthorized {
			msg = err.Error()
		}
		d.render(w, r, status(err), "signin", view{Title: "Sign in", Error: msg})
		return
	}
	s := d.sessions.create(secret, key)
	http.SetCookie(w, s.cookie())
	d.log.Info("dashboard sign-in", "key", key.ID)
	http.Redirect(w, r, "/ui/?signed-in=1", http.StatusSeeOther)
}

func (d *Dashboard) signout(w http.ResponseWriter, r *http.Request) {
	if s := d.sessions.get(r); s != nil && s.checkCSRF(r.PostFormValue("csrf")) {
		d.sessions.end(s)
	}
	http.SetCookie(w, clearedCookie())
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// path joins API path segments, escaping each.
func path(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// prettyJSON indents a payload as the API shows it, in its own key order.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s // a body that is not JSON, shown as the API shows it
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}
