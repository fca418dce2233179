package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// MinSecretLen is the shortest value masked by value: a secret of a few
// characters would mask half of any text, and protects little anyway. The
// config warns about shorter ones.
const MinSecretLen = 6

// Redactor masks credentials in what is about to be shown. It is built once
// per config and safe for concurrent use; a nil *Redactor masks by name and
// pattern only.
type Redactor struct {
	names   map[string]bool // lower-case names sensitive in this config only
	secrets []string        // every form of every secret, longest first
	rep     *strings.Replacer
}

// New returns a Redactor that masks every secret (and its URL-escaped,
// JSON-escaped and base64 forms) and the values of the extra names, such as
// the header a generic hmac hook reads its MAC from. Secrets shorter than
// MinSecretLen are left out.
func New(secrets, names []string) *Redactor {
	r := &Redactor{names: map[string]bool{}}
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			r.names[n] = true
		}
	}
	var all []string
	for _, s := range secrets {
		if len(s) >= MinSecretLen {
			all = append(all, forms(s)...)
		}
	}
	r.build(all)
	return r
}

// Join returns a Redactor that masks everything any of rs masks, such as
// the configs before and after a reload.
func Join(rs ...*Redactor) *Redactor {
	out := &Redactor{names: map[string]bool{}}
	var all []string
	for _, r := range rs {
		if r == nil {
			continue
		}
		for n := range r.names {
			out.names[n] = true
		}
		all = append(all, r.secrets...)
	}
	out.build(all)
	return out
}

// build sets the values masked by value, each form given already.
func (r *Redactor) build(all []string) {
	seen := map[string]bool{}
	r.secrets = nil
	for _, f := range all {
		// The mask itself must stay showable, or masking would never end.
		if len(f) >= MinSecretLen && !seen[f] && !strings.Contains(Mask, f) {
			seen[f] = true
			r.secrets = append(r.secrets, f)
		}
	}
	// Longest first: a secret that contains another is masked whole.
	sort.Slice(r.secrets, func(i, j int) bool {
		if len(r.secrets[i]) != len(r.secrets[j]) {
			return len(r.secrets[i]) > len(r.secrets[j])
		}
		return r.secrets[i] < r.secrets[j]
	})
	if len(r.secrets) > 0 {
		pairs := make([]string, 0, 2*len(r.secrets))
		for _, s := range r.secrets {
			pairs = append(pairs, s, Mask)
		}
		r.rep = strings.NewReplacer(pairs...)
	}
}

// forms are the ways a secret is commonly written out: as it is,
// URL-escaped (query and path), JSON-escaped, and in base64.
func forms(s string) []string {
	out := []string{s, url.QueryEscape(s), url.PathEscape(s)}
	if b, err := json.Marshal(s); err == nil {
		out = append(out, string(b[1:len(b)-1]))
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(s) == nil {
		j := strings.TrimSpace(b.String())
		out = append(out, j[1:len(j)-1])
	}
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		out = append(out, e.EncodeToString([]byte(s)))
	}
	return out
}

// Name reports whether a value under this name must be hidden: Sensitive,
// or a name this config marks as holding a credential.
func (r *Redactor) Name(name string) bool {
	if Sensitive(name) {
		return true
	}
	return r != nil && r.names[strings.ToLower(strings.TrimSpace(name))]
}

// String masks every known secret and every credential pattern in s.
func (r *Redactor) String(s string) string {
	if s == "" {
		return s
	}
	// Masking can join text around a mask into a new match; a few rounds
	// settle it.
	for range 3 {
		next := r.once(s)
		if next == s {
			break
		}
		s = next
	}
	return s
}

// once masks by pattern, then by value: a known secret may be part of a
// credential's name ("secret" in "client_secret"), which must still be
// recognised as one.
func (r *Redactor) once(s string) string {
	s = patterns(s)
	if r != nil && r.rep != nil {
		s = r.rep.Replace(s)
	}
	return s
}

// Header flattens h for display, names in canonical form, with the values
// of sensitive headers masked and every other value masked by value and
// pattern.
func (r *Redactor) Header(h http.Header) map[string]string {
	if h == nil {
		return nil
	}
	m := make(map[string]string, len(h))
	for k, v := range h {
		name := http.CanonicalHeaderKey(k)
		if r.Name(name) {
			m[name] = Mask
			continue
		}
		m[r.String(name)] = r.String(strings.Join(v, ", "))
	}
	return m
}

// Map masks a flat map of names to values (stored headers, a query),
// keeping the names as they are.
func (r *Redactor) Map(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if r.Name(k) {
			out[r.String(k)] = Mask
			continue
		}
		out[r.String(k)] = r.String(v)
	}
	return out
}

// URL masks the values of query parameters with sensitive names
// (?access_token=…), user info, and anything known or credential-shaped.
func (r *Redactor) URL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			raw = strings.Replace(u.String(), ":xxxxx@", ":"+Mask+"@", 1)
		}
	}
	base, query, ok := strings.Cut(raw, "?")
	if ok {
		query, frag, hasFrag := strings.Cut(query, "#")
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(k); err == nil && r.Name(name) {
				parts[i] = k + "=" + Mask
			}
		}
		raw = base + "?" + strings.Join(parts, "&")
		if hasFrag {
			raw += "#" + frag
		}
	}
	return r.String(raw)
}

// The credential patterns find credentials in free text whatever the
// config knows: JWTs, Bearer and Basic credentials, and name=value or
// "name": "value" pairs whose name is a credential's.
const credName = `(?:token|secret|signature|api-?_?key|apikey|access.?key|password|passwd|passphrase|pwd|credential|hmac|x-oc-hash|authorization|private.?key|jwt|session)`

var (
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}`)
	bearerRE = regexp.MustCompile(`\b(Bearer|bearer|BEARER)(\s+|%20|\+)([A-Za-z0-9._~+/-]{6,}=*)`)
	basicRE  = regexp.MustCompile(`\b(Basic|basic|BASIC)(\s+|%20|\+)([A-Za-z0-9+/_-]{4,}={0,2})`)
	kvRE     = regexp.MustCompile(`(?i)([A-Za-z0-9_.%\[\]-]*` + credName + `[A-Za-z0-9_.%\[\]-]*(?:=|%3D)[ \t]*["']?)([&,;]*[^\s"'&,;<>\\]+)`)
	jsonRE   = regexp.MustCompile(`(?i)("[A-Za-z0-9_.\[\] -]*` + credName + `[A-Za-z0-9_.\[\] -]*"\s*:\s*")((?:[^"\\]|\\.)+)`)
	// jsonInJSONRE is the same pair inside a JSON string (an error quoting
	// a response body): its quotes are escaped.
	jsonInJSONRE = regexp.MustCompile(`(?i)(\\"[A-Za-z0-9_.\[\] -]*` + credName + `[A-Za-z0-9_.\[\] -]*\\"\s*:\s*\\")((?:[^"\\]|\\[^"])+)`)
	// lineRE is a header line or a YAML line of a credential's name
	// ("X-Api-Key: …", "  password: …", a config error's quoted source
	// line "> 12 |   secret: …"): the rest of the line is its value.
	lineRE = regexp.MustCompile(`(?im)^([ \t>|0-9-]*[A-Za-z0-9_.-]*` + credName + `[A-Za-z0-9_.-]*[ \t]*:[ \t]+)([^\r\n]+)`)
	xmlRE  = regexp.MustCompile(`(?i)(<[A-Za-z0-9_:-]*` + credName + `[A-Za-z0-9_:-]*(?:\s[^>]*)?>)([^<]+)(</)`)
	// catchPathRE finds a catch URL's token in a request path:
	// /hooks/catch/<hook>/<token>. A token may hold any character but /,
	// so the whole segment up to the next / or ? is the token.
	catchPathRE = regexp.MustCompile(`(/hooks/catch/[^/?]+/)([^/?]+)`)
	// catchTextRE is catchPathRE in free text, where the URL ends at white
	// space (or a fragment): quotes and & inside the token are still its.
	catchTextRE = regexp.MustCompile(`(/hooks/catch/[^/\s?#"']+/)([^/\s?#]+)`)
)

// maskGroup replaces submatch i of every match of re, unless it is a mask
// already or keep says otherwise.
func maskGroup(re *regexp.Regexp, s string, i int, keep func(string) bool) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatchIndex(m)
		v := m[sub[2*i]:sub[2*i+1]]
		if strings.HasPrefix(v, Mask) || strings.HasPrefix(Mask, v) || (keep != nil && keep(v)) {
			return m
		}
		return m[:sub[2*i]] + Mask + m[sub[2*i+1]:]
	})
}

// notBasicCredential keeps words such as "Basic authentication": a Basic
// credential is base64 of user:password.
func notBasicCredential(v string) bool {
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := e.DecodeString(strings.TrimRight(v, "=")); err == nil && strings.Contains(string(b), ":") {
			return false
		} else if b, err := e.DecodeString(v); err == nil && strings.Contains(string(b), ":") {
			return false
		}
	}
	return true
}

func patterns(s string) string {
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, Mask)
	}
	// Cheap checks first: most logged values (ids, names, numbers) match
	// no pattern, and a log line is written per request.
	if strings.Contains(s, "earer") || strings.Contains(s, "EARER") {
		s = maskGroup(bearerRE, s, 3, nil)
	}
	if strings.Contains(s, "asic") || strings.Contains(s, "ASIC") {
		s = maskGroup(basicRE, s, 3, notBasicCredential)
	}
	if strings.ContainsAny(s, "=%") {
		s = maskGroup(kvRE, s, 2, nil)
	}
	if strings.Contains(s, `"`) {
		s = maskGroup(jsonRE, s, 2, nil)
		s = maskGroup(jsonInJSONRE, s, 2, nil)
	}
	if strings.Contains(s, ": ") || strings.Contains(s, ":\t") {
		s = maskGroup(lineRE, s, 2, nil)
	}
	if strings.Contains(s, "</") {
		s = maskGroup(xmlRE, s, 2, nil)
	}
	if strings.Contains(s, "/hooks/catch/") {
		s = maskToken(catchTextRE, s)
	}
	return s
}

// TokenPrefix shows a URL token as operators see it: its first four
// characters, enough to recognise it and far too few to use it.
func TokenPrefix(token string) string {
	if strings.HasSuffix(token, "…") && len(token) <= 4+len("…") {
		return token
	}
	n := min(4, len(token))
	// Cut on a rune boundary; a token is ASCII but a wrong one may not be.
	for n > 0 && n < len(token) && !utf8Start(token[n]) {
		n--
	}
	return token[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Path shows a request path with a catch URL's token cut to its prefix,
// whether or not it is a right one.
func Path(p string) string {
	if !strings.Contains(p, "/hooks/catch/") {
		return p
	}
	return maskToken(catchPathRE, p)
}

// maskToken cuts the token re finds (its second group) to its prefix.
func maskToken(re *regexp.Regexp, s string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatch(m)
		return sub[1] + TokenPrefix(sub[2])
	})
}

// Header is Header of a Redactor that knows no secrets: by name and
// pattern only, for code that has no config.
func Header(h http.Header) map[string]string { return (*Redactor)(nil).Header(h) }

// Text is String of a Redactor that knows no secrets: credential patterns
// and catch-URL tokens only.
func Text(s string) string { return (*Redactor)(nil).String(s) }

// URL is URL of a Redactor that knows no secrets.
func URL(raw string) string { return (*Redactor)(nil).URL(raw) }
