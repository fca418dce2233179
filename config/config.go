package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/verify"
)

// Defaults applied when a hook does not say otherwise.
const (
	DefaultMaxBody = 1 << 20
	DefaultKeyTTL  = 24 * time.Hour
)

// Config is a loaded, validated and compiled configuration. It is immutable:
// a reload builds a new one and swaps it in.
type Config struct {
	Path      string   // the main file
	Files     []string // every file read, for watching
	PublicURL string   // base of the catch URLs shown to operators; may be empty
	Hooks     map[string]*Hook
	Actions   map[string]*actions.Action

	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a sender's address (server.trusted_proxies).
	TrustedProxies []netip.Prefix
	// AllowNetworks are private or reserved networks that actions may reach
	// all the same (egress.allow_networks); everything else such is refused.
	AllowNetworks []netip.Prefix
	// Evaluation bounds the time and memory of one event's expressions
	// (server.evaluation); a payload decoding to more than
	// Evaluation.MaxValues() values is refused.
	Evaluation rules.Limits

	// Retention is how long final events are kept (retention:).
	Retention Retention

	// WaitReplicas is how many replicas of the store must hold an event
	// before it is answered 2xx (durability: wait makes it 1).
	WaitReplicas int

	// Warnings are problems that do not stop the config from loading, for
	// the operator's log.
	Warnings []string

	// EnvNames are the environment variables the config names (${VAR}),
	// set or not, sorted.
	EnvNames []string

	// envExprs are the sources, as written, of the expressions that read
	// the environment (LoadCandidate).
	envExprs map[string]bool

	redactor *redact.Redactor
}

// Hook is one catch-hook endpoint.
type Hook struct {
	Name     string
	Verifier verify.Verifier
	Token    string         // URL token; empty when the hook has none
	MaxBody  int64          // bytes
	Key      *rules.Program // idempotency.key; nil means what the signature covers (see IdempotencyKey)
	KeyTTL   time.Duration
	Rules    *rules.Set

	Basic       *BasicAuth     // auth.basic: HTTP basic credentials required
	HeaderToken *HeaderToken   // auth.header: a static header value required
	AllowIPs    []netip.Prefix // auth.allow_ips: sender addresses allowed; empty allows all
	Response    *Response      // response: a synchronous answer instead of 202 {id}

	// RateLimit caps the requests the hook takes per period (rate_limit:);
	// the zero Rate sets no limit.
	RateLimit store.Rate

	// Body is what the expressions evaluated at intake read of a payload
	// (its key, its rules' conditions, its response and the order_by of
	// the actions its rules name): all of the payload the gateway needs
	// to decode (rules.DecodeBodyShaped).
	Body *rules.Shape
}

// BasicAuth is a required user name and password.
type BasicAuth = verify.BasicAuth

// HeaderToken is a header that must carry exactly Value.
type HeaderToken = verify.HeaderToken

// Sender simulates the hook's real sender (its signature and credentials),
// for dry runs and test pings.
func (h *Hook) Sender() verify.Sender {
	return verify.Sender{Verifier: h.Verifier, Basic: h.Basic, Header: h.HeaderToken}
}

// Response is a hook's synchronous answer, for senders that expect one
// (Slack's url_verification challenge). When is nil or true for the event,
// the sender gets Status and Body instead of 202 {id}.
type Response struct {
	When        *rules.Program // boolean; nil always applies
	Status      int
	Body        *rules.Program // its value is sent: a string as it is, anything else as JSON
	ContentType string
}

// HookNames returns the hook names in order.
func (c *Config) HookNames() []string {
	names := make([]string, 0, len(c.Hooks))
	for n := range c.Hooks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Load reads the config at path, the rule and action files it names
// (relative to its own folder), expands ${VAR} and ${VAR:-default} with
// lookup, and compiles everything. Its error is an Errors listing every
// problem found, each as file:line:col: message.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	return loadWith(path, lookup, readFile, nil)
}

// LoadFiles is Load reading the config and the files it names from files,
// by the paths Load would open (Config.Files of the same config loaded from
// disk), never from disk: how a config sent over the network is checked.
func LoadFiles(path string, files map[string][]byte, lookup func(string) (string, bool)) (*Config, error) {
	return loadWith(path, lookup, filesReader(files), nil)
}

// LoadCandidate is LoadFiles for a candidate config that a server resolves
// with its own environment (what-if through the admin API), beside
// current, the config in force. A ${VAR} inside an expression (a rule's
// when:, an order_by:, a key, the {{ }} of a template) is refused unless
// current has the same expression as written: an expression can turn a
// value into text that no mask recognises (upper, reverse, a comparison
// made one letter at a time), so a new one could read the server's
// secrets out. As literal text a value may go anywhere: the candidate
// masks every value of the environment it reads, as a secret.
func LoadCandidate(path string, files map[string][]byte, lookup func(string) (string, bool), current *Config) (*Config, error) {
	return loadWith(path, lookup, filesReader(files), func(src string) bool { return current.envExprs[src] })
}

// filesReader reads the files of a config sent whole, by the paths Load
// would open.
func filesReader(files map[string][]byte) func(string) ([]byte, error) {
	return func(file string) ([]byte, error) {
		data, ok := files[file]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: file, Err: fs.ErrNotExist}
		}
		if len(data) > MaxFileSize {
			return nil, &os.PathError{Op: "read", Path: file, Err: errTooLarge}
		}
		return data, nil
	}
}

// loadWith is Load reading files with read; exprEnv, when not nil, says
// which expressions may read the environment (loader.exprEnv).
func loadWith(path string, lookup func(string) (string, bool), read func(string) ([]byte, error), exprEnv func(string) bool) (*Config, error) {
	names := map[string]bool{}
	l := &loader{read: read, dir: filepath.Dir(path), main: path,
		trees: map[string]ast.Node{}, ruleFiles: map[string]*ruleFile{},
		exprEnv: exprEnv, envExprs: map[string]bool{}}
	l.lookup = func(name string) (string, bool) {
		names[name] = true
		v, ok := lookup(name)
		if exprEnv != nil && len(strings.TrimSpace(v)) >= redact.MinSecretLen {
			// A candidate masks every value of the server's environment,
			// wherever it puts it.
			l.secrets.values = append(l.secrets.values, strings.TrimSpace(v))
		}
		return v, ok
	}
	c := l.load(path)
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	c.EnvNames = slices.Sorted(maps.Keys(names))
	c.envExprs = l.envExprs
	return c, nil
}

// MaxFileSize is the most a config, rule or action file may hold. Files are
// read whole; the cap keeps a wrong path (a log, a device) from eating the
// memory of every process that loads the config.
const MaxFileSize = 4 << 20

var errTooLarge = errors.New("larger than 4MiB, the most a config, rule or action file may hold: split it into several rule or action files")

// readFile reads a regular file of at most MaxFileSize bytes.
func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: file, Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, &os.PathError{Op: "read", Path: file, Err: errTooLarge}
	}
	return data, nil
}

// loader reads and parses each file once per load: a rule file named by
// many hooks is compiled once and shared, and the syntax trees kept here
// answer questions the decoded values cannot (where a key is written).
type loader struct {
	lookup  func(string) (string, bool)
	read    func(string) ([]byte, error)
	dir     string
	main    string
	errs    Errors
	files   []string
	secrets secretSet

	trees     map[string]ast.Node  // each parsed file's document
	ruleFiles map[string]*ruleFile // each rule file, compiled

	// exprEnv, when not nil, says whether an expression as written may
	// read the environment (LoadCandidate); envExprs are the sources of
	// the expressions that do.
	exprEnv  func(src string) bool
	envExprs map[string]bool
}

// errorf records a problem. The same problem found again (a rule name
// defined twice in two rule files that several hooks share) is listed once.
func (l *loader) errorf(file string, p pos, format string, args ...any) {
	e := &Error{File: file, Line: p.Line, Column: p.Col, Msg: fmt.Sprintf(format, args...)}
	for _, prev := range l.errs {
		if *prev == *e {
			return
		}
	}
	l.errs = append(l.errs, e)
}

// ref is where a file was named, for errors about the file itself.
type ref struct {
	file string
	at   scalar
	what string
}

// decode parses one YAML file strictly into v and returns its syntax tree.
// from, when set, is where the file was named.
func (l *loader) decode(file string, v any, from *ref) (*ast.File, bool) {
	data, err := l.read(file)
	if err != nil {
		l.readError(file, err, from)
		return nil, false
	}
	return l.decodeData(file, data, v)
}

// decodeData parses data, read from file, strictly into v.
func (l *loader) decodeData(file string, data []byte, v any) (*ast.File, bool) {
	l.files = append(l.files, file)
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		l.yamlError(file, err)
		return nil, false
	}
	if len(f.Docs) > 1 {
		l.errorf(file, tokenPos(f.Docs[1].GetToken()), "only one YAML document is allowed per file")
		return nil, false
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		l.errorf(file, pos{}, "file is empty")
		return nil, false
	}
	l.trees[file] = f.Docs[0].Body
	ctx := withLookup(context.Background(), l.lookup)
	dec := yaml.NewDecoder(bytes.NewReader(nil), yaml.Strict())
	if err := dec.DecodeFromNodeContext(ctx, f.Docs[0].Body, v); err != nil {
		l.yamlError(file, err)
		return nil, false
	}
	return f, true
}

// readError reports a file that could not be read, where it was named
// when from is set.
func (l *loader) readError(file string, err error, from *ref) {
	cause := err
	if pe, ok := err.(*os.PathError); ok {
		cause = pe.Err
	}
	switch {
	case from != nil:
		l.errorf(from.file, from.at.pos, "%s %s: %v", from.what, file, cause)
	case errors.Is(err, errTooLarge):
		l.errorf(file, pos{1, 1}, "%v", cause)
	default:
		l.errorf(file, pos{}, "%v", cause)
	}
}

// tree is file's parsed document, for findKey: the decoded values keep
// positions only for scalars. It is nil when the file could not be
// parsed, which its decoding has reported already.
func (l *loader) tree(file string) ast.Node { return l.trees[file] }

func (l *loader) yamlError(file string, err error) {
	var pe *posError
	if errors.As(err, &pe) {
		l.errorf(file, pe.pos, "%s", pe.msg)
		return
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg := ye.GetMessage()
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			msg += suggestField(msg)
		}
		l.errorf(file, tokenPos(ye.GetToken()), "%s", msg)
		return
	}
	l.errorf(file, pos{}, "%v", err)
}

func (l *loader) load(path string) *Config {
	var raw rawConfig
	if _, ok := l.decode(path, &raw, nil); !ok {
		return nil
	}
	c := &Config{Path: path, Hooks: map[string]*Hook{}, Actions: map[string]*actions.Action{}}
	if raw.PublicURL.Set {
		u, err := url.Parse(raw.PublicURL.Value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.errorf(path, raw.PublicURL.pos, "public_url must be an absolute http(s) URL, got %q", raw.PublicURL.Value)
		}
		c.PublicURL = strings.TrimRight(raw.PublicURL.Value, "/")
	}
	c.TrustedProxies = l.compileServer(path, raw.Server)
	c.Evaluation = l.compileEvaluation(path, raw.Server)
	c.AllowNetworks = l.compileEgress(path, raw.Egress)

	// Actions first: rules refer to them by name.
	all := map[string]*rawAction{}
	for name, a := range raw.Actions {
		if a != nil {
			a.file = path
		}
		all[name] = a
	}
	for _, f := range raw.ActionFiles {
		file := l.rel(f.Value)
		var af rawActionFile
		if _, ok := l.decode(file, &af, &ref{path, f, "action file"}); !ok {
			continue
		}
		for name, a := range af.Actions {
			if prev, dup := all[name]; dup {
				l.errorf(file, a.URL.pos, "action %q is already defined in %s", name, prev.file)
				continue
			}
			a.file = file
			all[name] = a
		}
	}
	for _, name := range slices.Sorted(maps.Keys(all)) {
		a := all[name]
		if !nameRE.MatchString(name) {
			l.errorf(a.file, a.URL.pos, "action name %q: use letters, digits, '_', '-' and '.'", name)
		}
		if act := l.action(name, a); act != nil {
			c.Actions[name] = act
			l.secrets.action(name, a)
		}
	}

	if len(raw.Hooks) == 0 {
		l.errorf(path, pos{1, 1}, "no hooks defined: add a hooks: section")
	}
	for _, name := range slices.Sorted(maps.Keys(raw.Hooks)) {
		h := raw.Hooks[name]
		if h == nil {
			l.errorf(path, keyPos(l.tree(path), "hooks", name), "hook %q is empty", name)
			continue
		}
		if !nameRE.MatchString(name) {
			l.errorf(path, keyPos(l.tree(path), "hooks", name), "hook name %q: use letters, digits, '_', '-' and '.'", name)
		}
		if hook := l.hook(path, name, h, c.Actions); hook != nil {
			c.Hooks[name] = hook
			l.secrets.hook(name, h, hook)
		}
	}
	l.checkForwarded(all, raw.Hooks)
	c.Retention = l.compileRetention(path, raw.Retention, c.Hooks, raw.Hooks)
	switch d := raw.Durability; {
	case !d.Set || d.Value == "default":
	case d.Value == "wait":
		c.WaitReplicas = 1
	default:
		l.errorf(path, d.pos, "durability: want default or wait, got %q", d.Value)
	}
	c.Files = l.files
	c.redactor = redact.New(l.secrets.values, l.secrets.names)
	slices.Sort(l.secrets.short)
	for _, where := range slices.Compact(l.secrets.short) {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s: secret shorter than %d characters: it is not masked by value where it could be shown (only by name); use a longer one", where, redact.MinSecretLen))
	}
	return c
}

func (l *loader) rel(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *loader) hook(file, name string, h *rawHook, acts map[string]*actions.Action) *Hook {
	hook := &Hook{Name: name, MaxBody: DefaultMaxBody, KeyTTL: DefaultKeyTTL, Rules: &rules.Set{}}
	nerr := len(l.errs)

	if h.Verify == nil {
		l.errorf(file, keyPos(l.tree(file), "hooks", name), "hook %q: verify: is required (use scheme: none for a hook protected by its URL token)", name)
		return nil
	}
	hook.Verifier = l.verifier(file, name, h.Verify)
	if h.Token.Set {
		hook.Token = h.Token.Value
		if len(hook.Token) < 16 {
			l.errorf(file, h.Token.pos, "hook %q: token must be at least 16 characters (it is the hook's secret)", name)
		} else if strings.ContainsAny(hook.Token, "/?#% ") {
			l.errorf(file, h.Token.pos, "hook %q: token must not contain '/', '?', '#', '%%' or spaces", name)
		}
	}
	if h.MaxBody.Set {
		n, err := parseSize(h.MaxBody.Value)
		if err != nil {
			l.errorf(file, h.MaxBody.pos, "hook %q: max_body: %v", name, err)
		}
		hook.MaxBody = n
	}
	if h.RateLimit.Set {
		r, err := parseRate(h.RateLimit.Value, "requests")
		if err != nil {
			l.errorf(file, h.RateLimit.pos, "hook %q: rate_limit: %v", name, err)
		}
		// A tenth of a period's worth at once: senders send several
		// webhooks together (a batch of order updates), and one refused
		// may never come back.
		r.AtOnce = (r.Count + 9) / 10
		hook.RateLimit = r
	}
	if h.Idempotency != nil {
		if h.Idempotency.Key.Set && l.exprText(file, &h.Idempotency.Key, fmt.Sprintf("hook %q: idempotency key", name)) {
			p, err := rules.CompileValue(h.Idempotency.Key.Value)
			if err != nil {
				l.exprError(file, h.Idempotency.Key, fmt.Sprintf("hook %q: idempotency key", name), err)
			}
			hook.Key = p
		}
		if h.Idempotency.TTL.Set {
			d, err := time.ParseDuration(h.Idempotency.TTL.Value)
			if err != nil || d <= 0 {
				l.errorf(file, h.Idempotency.TTL.pos, "hook %q: idempotency ttl: want a positive duration such as 24h, got %q", name, h.Idempotency.TTL.Value)
			}
			hook.KeyTTL = d
		}
	}
	l.checkReplayWindow(file, name, h, hook)
	for _, rf := range h.Rules {
		l.hookRules(l.rel(rf.Value), &ref{file, rf, "rule file"}, hook.Rules, acts, slices.Sorted(maps.Keys(acts)))
	}
	l.compileIngress(file, name, h, hook)
	if hook.Verifier != nil && hook.Verifier.Scheme() == "none" && hook.Token == "" && hook.Basic == nil && hook.HeaderToken == nil && len(hook.AllowIPs) == 0 {
		l.errorf(file, h.Verify.Scheme.pos, "hook %q: scheme none needs a token, auth.basic, auth.header or auth.allow_ips: anyone could post to it", name)
	}
	if len(l.errs) > nerr {
		return nil
	}
	hook.Body = intakeShape(hook, acts)
	return hook
}

// intakeShape is what the expressions evaluated when a payload for h
// arrives read of it.
func intakeShape(h *Hook, acts map[string]*actions.Action) *rules.Shape {
	shapes := []*rules.Shape{h.Key.BodyShape(), h.Rules.BodyShape()}
	if h.Response != nil {
		shapes = append(shapes, h.Response.When.BodyShape(), h.Response.Body.BodyShape())
	}
	for _, r := range h.Rules.Rules {
		for _, a := range r.Actions {
			if act := acts[a]; act != nil {
				shapes = append(shapes, act.OrderBy.BodyShape())
			}
		}
	}
	return rules.Union(shapes...)
}

// checkReplayWindow refuses an idempotency ttl that ends before a signed
// request of a timestamped scheme stops verifying: sent again after its
// key expired, a captured request would be taken as a new event. Its
// timestamp may be as far ahead as the tolerance and stays good for as
// long after, so the key must outlive twice the tolerance.
func (l *loader) checkReplayWindow(file, name string, h *rawHook, hook *Hook) {
	if hook.Verifier == nil || hook.KeyTTL <= 0 {
		return
	}
	switch hook.Verifier.Scheme() {
	case verify.SchemeStripe, verify.SchemeSlack, verify.SchemeStandardWebhooks:
	default:
		return
	}
	tol := verify.DefaultTolerance
	if h.Verify.Tolerance.Set {
		tol, _ = time.ParseDuration(h.Verify.Tolerance.Value) // checked by verifier
	}
	if hook.KeyTTL >= 2*tol {
		return
	}
	at := h.Verify.Tolerance.pos
	if h.Idempotency != nil && h.Idempotency.TTL.Set {
		at = h.Idempotency.TTL.pos
	}
	l.errorf(file, at, "hook %q: idempotency ttl %s is shorter than twice verify.tolerance (%s): a signed request stays good for up to %s after it first arrives, and sent again after its key expired it would be taken as a new event; make the ttl at least %s or the tolerance shorter",
		name, hook.KeyTTL, tol, 2*tol, 2*tol)
}

func (l *loader) verifier(file, hook string, v *rawVerify) verify.Verifier {
	if !v.Scheme.Set {
		l.errorf(file, keyPos(l.tree(file), "hooks", hook, "verify"), "hook %q: verify.scheme is required (one of %s)", hook, strings.Join(verify.Schemes(), ", "))
		return nil
	}
	cfg := verify.Config{
		Scheme:    v.Scheme.Value,
		Header:    v.Header.Value,
		Algorithm: v.Algorithm.Value,
		Encoding:  v.Encoding.Value,
		Prefix:    v.Prefix.Value,
	}
	if v.Secret.Set && v.Secret.Value != "" {
		cfg.Secrets = append(cfg.Secrets, v.Secret.Value)
	}
	// Empty entries are dropped so that an optional second secret for
	// rotation (${PREVIOUS_SECRET:-}) can be left unset.
	for _, s := range v.Secrets {
		if s.Value != "" {
			cfg.Secrets = append(cfg.Secrets, s.Value)
		}
	}
	if v.Tolerance.Set {
		d, err := time.ParseDuration(v.Tolerance.Value)
		if err != nil || d <= 0 {
			l.errorf(file, v.Tolerance.pos, "hook %q: verify.tolerance: want a positive duration such as 5m, got %q", hook, v.Tolerance.Value)
			return nil
		}
		cfg.Tolerance = d
	}
	vf, err := verify.New(cfg)
	if err != nil {
		p := v.Scheme.pos
		var ce *verify.ConfigError
		if errors.As(err, &ce) {
			switch ce.Field {
			case "header":
				p = orPos(v.Header, p)
			case "algorithm":
				p = orPos(v.Algorithm, p)
			case "encoding":
				p = orPos(v.Encoding, p)
			case "prefix":
				p = orPos(v.Prefix, p)
			case "tolerance":
				p = orPos(v.Tolerance, p)
			case "secrets":
				if len(v.Secrets) > 0 {
					p = v.Secrets[0].pos
				} else {
					p = orPos(v.Secret, p)
				}
			}
		}
		l.errorf(file, p, "hook %q: verify: %v", hook, err)
		return nil
	}
	return vf
}

func orPos(s scalar, p pos) pos {
	if s.Set || s.Line > 0 {
		return s.pos
	}
	return p
}

// ruleFile is a rule file compiled once per load, whichever hooks name it.
type ruleFile struct {
	readErr error // the file could not be read: reported where each hook names it
	rules   []fileRule
}

// fileRule is one rule of a rule file; ok is false when it did not compile
// (reported once, in the file).
type fileRule struct {
	name    scalar
	rule    rules.Rule
	ok      bool
	unnamed bool
}

// hookRules adds the rules of a rule file to a hook's set. A rule name
// used twice within the hook is reported here, for each hook.
func (l *loader) hookRules(file string, from *ref, set *rules.Set, acts map[string]*actions.Action, names []string) {
	rf := l.ruleFile(file, acts, names)
	if rf.readErr != nil {
		l.readError(file, rf.readErr, from)
		return
	}
	seen := map[string]bool{}
	for _, r := range set.Rules {
		seen[r.Name] = true
	}
	for _, r := range rf.rules {
		if r.unnamed {
			continue
		}
		if seen[r.name.Value] {
			l.errorf(file, r.name.pos, "rule %q is defined twice for this hook", r.name.Value)
			continue
		}
		seen[r.name.Value] = true
		if r.ok {
			set.Rules = append(set.Rules, r.rule)
		}
	}
}

// ruleFile reads, parses and compiles a rule file the first time it is
// named in this load, and returns it compiled every time: problems in the
// file itself are reported once.
func (l *loader) ruleFile(file string, acts map[string]*actions.Action, names []string) *ruleFile {
	if rf, ok := l.ruleFiles[file]; ok {
		return rf
	}
	out := &ruleFile{}
	l.ruleFiles[file] = out
	data, err := l.read(file)
	if err != nil {
		out.readErr = err
		return out
	}
	var raw rawRuleFile
	if _, ok := l.decodeData(file, data, &raw); !ok {
		return out
	}
	for _, r := range raw.Rules {
		fr := fileRule{name: r.Name, ok: true}
		if !r.Name.Set || r.Name.Value == "" {
			l.errorf(file, r.When.pos, "rule without a name: add name:")
			fr.ok, fr.unnamed = false, true
		}
		if !l.compileRule(file, &r, &fr.rule, acts, names) {
			fr.ok = false
		}
		out.rules = append(out.rules, fr)
	}
	return out
}

// compileRule compiles r into rule; a problem is reported and ok is false.
func (l *loader) compileRule(file string, r *rawRule, rule *rules.Rule, acts map[string]*actions.Action, names []string) bool {
	if !r.When.Set {
		l.errorf(file, r.Name.pos, "rule %q: when: is required (write when: true to match every event)", r.Name.Value)
		return false
	}
	if !l.exprText(file, &r.When, fmt.Sprintf("rule %q: when", r.Name.Value)) {
		return false
	}
	ok := true
	p, err := rules.CompileCondition(r.When.Value)
	if err != nil {
		l.exprError(file, r.When, fmt.Sprintf("rule %q", r.Name.Value), err)
		ok = false
	}
	var an []string
	for _, a := range r.Actions {
		if _, exists := acts[a.Value]; !exists {
			l.errorf(file, a.pos, "rule %q: unknown action %q (defined actions: %s)", r.Name.Value, a.Value, strings.Join(names, ", "))
			ok = false
		}
		an = append(an, a.Value)
	}
	*rule = rules.Rule{Name: r.Name.Value, When: p, Actions: an}
	return ok
}

// exprError reports an expr compile error at its place inside the scalar.
// exprText makes s.Value expression source: its ${…} references are
// expanded from the text as written by exprSource, so that a value from
// the environment can only be the content of a string literal. A problem
// is reported at s as what; ok is false then.
func (l *loader) exprText(file string, s *scalar, what string) bool {
	if !l.exprReadsEnv(file, s.pos, s.raw, what) {
		return false
	}
	v, err := exprSource(s.raw, l.lookup)
	if err != nil {
		l.errorf(file, s.pos, "%s: %v", what, err)
		return false
	}
	s.Value = v
	return true
}

// templateText makes s.Value a template's source, expanded by
// templateSource: a value from the environment is literal text, or a
// string literal inside {{ }}.
func (l *loader) templateText(file string, s *scalar, what string) bool {
	if !s.Set {
		return true
	}
	if !l.templateReadsEnv(file, *s, what) {
		return false
	}
	v, err := templateSource(s.raw, l.lookup)
	if err != nil {
		l.exprError(file, *s, what, err)
		return false
	}
	s.Value = v
	return true
}

// exprReadsEnv notes an expression that reads the environment, and
// refuses it where the loader's exprEnv does not let it (LoadCandidate).
func (l *loader) exprReadsEnv(file string, p pos, src, what string) bool {
	names := envNames(src)
	if len(names) == 0 {
		return true
	}
	l.envExprs[src] = true
	if l.exprEnv == nil || l.exprEnv(src) {
		return true
	}
	l.errorf(file, p, "%s: ${%s} in an expression the config in force does not have: through the admin API, a candidate reads the server's environment in an expression only where the config in force has the same one; to try a new one, run whatif with --store where %s is set",
		what, strings.Join(names, "}, ${"), strings.Join(names, ", "))
	return false
}

// templateReadsEnv is exprReadsEnv for each {{ }} of a template.
func (l *loader) templateReadsEnv(file string, s scalar, what string) bool {
	if !strings.Contains(s.raw, "${") {
		return true
	}
	parts, err := rules.SplitTemplate(s.raw)
	if err != nil {
		return true // templateSource says what is wrong
	}
	ok := true
	for _, p := range parts {
		if p.Expr {
			ok = l.exprReadsEnv(file, s.pos, p.Text, what) && ok
		}
	}
	return ok
}

func (l *loader) exprError(file string, s scalar, what string, err error) {
	var te *rules.TemplateError
	var ee *rules.ExprError
	switch {
	case errors.As(err, &te):
		// The expression's own column counts from the start of its {{ }}.
		at := s.at(te.Offset)
		if errors.As(te.Err, &ee) {
			l.errorf(file, at, "%s: %s", what, ee.Msg)
		} else {
			l.errorf(file, at, "%s: %v", what, te.Err)
		}
		return
	case errors.As(err, &ee):
		l.errorf(file, s.atLineCol(ee.Line, ee.Column), "%s: %s", what, ee.Msg)
		return
	}
	l.errorf(file, s.pos, "%s: %v", what, err)
}

// IdempotencyKey computes the hook's idempotency key for a verified event.
// An idempotency.key expression is used as written. Without one, the key
// comes from what the signature covers (docs/idempotency.md): the id the
// scheme signs (verify.Verifier.SignedKey), else the SHA-256 of the raw
// body, never an unsigned header. When the expression fails on this
// payload the body hash is used too, and the failure is returned
// alongside: refusing the event would lose it for senders that never retry.
func (h *Hook) IdempotencyKey(header http.Header, env rules.Env, raw []byte) (string, error) {
	k, _, err := h.KeyWithSource(header, env, raw)
	return k, err
}

// KeyWithSource is IdempotencyKey that also says where the key came from:
// store.KeyFromExpression, the field the scheme signs
// (verify.Verifier.KeySource) or store.KeyFromBody.
func (h *Hook) KeyWithSource(header http.Header, env rules.Env, raw []byte) (key, source string, err error) {
	switch {
	case h.Key != nil:
		var k string
		if k, err = h.Key.KeyString(env); err == nil {
			return k, store.KeyFromExpression, nil
		}
	case h.Verifier != nil:
		if k, ok := h.Verifier.SignedKey(header, raw); ok {
			return k, h.Verifier.KeySource(header), nil
		}
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:]), store.KeyFromBody, err
}
