package whatif

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// Change is one difference in the request an action would send. From and
// To are JSON values as they would be shown, secrets masked; one is absent
// (omitted) where the request has no such field on that side.
type Change struct {
	// Field is "method", "url", "header <Name>", "body" (a body that is not
	// JSON), "body.<path>" (a JSON body's field, such as body.data.status
	// or body.items[2]), "sign" (how the request is signed: the scheme and
	// the number of secrets, never a secret) or "render" (the error that keeps the action from
	// being rendered at all).
	Field string          `json:"field"`
	From  json.RawMessage `json:"from,omitempty"`
	To    json.RawMessage `json:"to,omitempty"`
	// SecretDiffers: the two values differ only in what is masked (a
	// rotated token), so From and To read the same.
	SecretDiffers bool `json:"secret_differs,omitempty"`
}

// Delivery is one action gained, lost or changed.
type Delivery struct {
	Action string `json:"action"`
	// Rule is the rule that chose the action: the candidate's for a gained
	// or changed delivery, the current config's for a lost one.
	Rule   string `json:"rule"`
	Method string `json:"method,omitempty"`
	URL    string `json:"url,omitempty"` // masked
	// Error is why the action cannot be rendered for this event.
	Error   string   `json:"error,omitempty"`
	Changes []Change `json:"changes,omitempty"`
}

// Event is what differs for one stored event.
type Event struct {
	ID         string     `json:"id"`
	Hook       string     `json:"hook"`
	ReceivedAt time.Time  `json:"received_at"`
	Gained     []Delivery `json:"gained"`
	Lost       []Delivery `json:"lost"`
	Changed    []Delivery `json:"changed"`
	// Current and Candidate are set when that config would refuse the
	// stored payload (and so make no delivery for it).
	Current   string `json:"current_error,omitempty"`
	Candidate string `json:"candidate_error,omitempty"`
}

// Differs reports whether anything differs for the event.
func (e *Event) Differs() bool {
	return len(e.Gained)+len(e.Lost)+len(e.Changed) > 0 || e.Current != e.Candidate
}

// Compare runs ev through both configs and reports what differs, every
// value shown through red. Both are rendered at the event's ReceivedAt, so
// that a template reading now() gives the same value in both.
func Compare(current, candidate *config.Config, ev store.Event, red *redact.Redactor) Event {
	out := Event{ID: ev.ID, Hook: ev.Hook, ReceivedAt: ev.ReceivedAt, Gained: []Delivery{}, Lost: []Delivery{}, Changed: []Delivery{}}
	was, err := Plan(current, ev, ev.ReceivedAt)
	if err != nil {
		out.Current = red.String(err.Error())
	}
	now, err := Plan(candidate, ev, ev.ReceivedAt)
	if err != nil {
		out.Candidate = red.String(err.Error())
	}
	before := map[string]Planned{}
	for _, p := range was {
		before[p.Action] = p
	}
	after := map[string]Planned{}
	for _, p := range now {
		after[p.Action] = p
		old, ok := before[p.Action]
		if !ok {
			out.Gained = append(out.Gained, delivery(p, red))
			continue
		}
		if cs := changes(old, p, red); len(cs) > 0 {
			d := delivery(p, red)
			d.Changes = cs
			out.Changed = append(out.Changed, d)
		}
	}
	for _, p := range was {
		if _, ok := after[p.Action]; !ok {
			out.Lost = append(out.Lost, delivery(p, red))
		}
	}
	for _, ds := range [][]Delivery{out.Gained, out.Lost, out.Changed} {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Action < ds[j].Action })
	}
	return out
}

func delivery(p Planned, red *redact.Redactor) Delivery {
	d := Delivery{Action: p.Action, Rule: p.Rule}
	if p.Err != nil {
		d.Error = red.String(p.Err.Error())
		return d
	}
	d.Method = p.Request.Method
	d.URL = red.URL(p.Request.URL)
	return d
}

// changes lists what differs between two renderings of one action: method,
// URL, headers by name, then body fields by path.
func changes(a, b Planned, red *redact.Redactor) []Change {
	if a.Err != nil || b.Err != nil {
		ea, eb := errText(a.Err), errText(b.Err)
		if ea == eb {
			return nil
		}
		return []Change{shown("render", optString(ea, a.Err != nil, red), optString(eb, b.Err != nil, red), ea, eb)}
	}
	var out []Change
	ra, rb := a.Request, b.Request
	if ra.Method != rb.Method {
		out = append(out, shown("method", quote(ra.Method), quote(rb.Method), ra.Method, rb.Method))
	}
	if ra.URL != rb.URL {
		out = append(out, shown("url", quote(red.URL(ra.URL)), quote(red.URL(rb.URL)), ra.URL, rb.URL))
	}
	out = append(out, headerChanges(ra.Header, rb.Header, red)...)
	switch {
	case a.Signing != b.Signing:
		out = append(out, shown("sign", optString(a.Signing, a.Signing != "", red), optString(b.Signing, b.Signing != "", red), a.Signing, b.Signing))
	case a.action != nil && b.action != nil && !a.action.SameSigning(b.action):
		// Only a secret changed: the descriptions read the same.
		out = append(out, Change{Field: "sign", From: quote(red.String(a.Signing)), To: quote(red.String(b.Signing)), SecretDiffers: true})
	}
	out = append(out, bodyChanges(ra, rb, red)...)
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// optString is s as shown, or absent when the side has none.
func optString(s string, has bool, red *redact.Redactor) json.RawMessage {
	if !has {
		return nil
	}
	return quote(red.String(s))
}

// shown is a change whose raw values were a and b, shown as from and to.
func shown(field string, from, to json.RawMessage, a, b any) Change {
	c := Change{Field: field, From: from, To: to}
	c.SecretDiffers = bytes.Equal(from, to) && !reflect.DeepEqual(a, b)
	return c
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func headerChanges(a, b http.Header, red *redact.Redactor) []Change {
	flat := func(h http.Header) map[string]string {
		m := map[string]string{}
		for k, v := range h {
			m[http.CanonicalHeaderKey(k)] = strings.Join(v, ", ")
		}
		return m
	}
	fa, fb := flat(a), flat(b)
	var names []string
	for k := range fa {
		names = append(names, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	show := func(name, v string, ok bool) json.RawMessage {
		if !ok {
			return nil
		}
		if red.Name(name) {
			return quote(redact.Mask)
		}
		return quote(red.String(v))
	}
	var out []Change
	for _, k := range names {
		va, oka := fa[k]
		vb, okb := fb[k]
		if oka == okb && va == vb {
			continue
		}
		out = append(out, shown("header "+red.String(k), show(k, va, oka), show(k, vb, okb), va, vb))
	}
	return out
}

func bodyChanges(a, b *actions.Request, red *redact.Redactor) []Change {
	if bytes.Equal(a.Body, b.Body) {
		return nil
	}
	va, oka := decodeJSON(a.Body)
	vb, okb := decodeJSON(b.Body)
	if oka && okb {
		var out []Change
		diffValue("body", "", va, vb, true, true, red, &out)
		return out
	}
	text := func(body []byte) json.RawMessage {
		if len(body) == 0 {
			return nil
		}
		return quote(red.String(clip(string(body))))
	}
	return []Change{shown("body", text(a.Body), text(b.Body), string(a.Body), string(b.Body))}
}

func decodeJSON(body []byte) (any, bool) {
	if len(body) == 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// diffValue appends the differences between a and b at path; key is the
// name that holds them ("" at the top and in lists), whose credential
// names mask the whole value.
func diffValue(path, key string, a, b any, hasA, hasB bool, red *redact.Redactor, out *[]Change) {
	if hasA && hasB && reflect.DeepEqual(a, b) {
		return
	}
	masked := key != "" && red.Name(key)
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if hasA && hasB && okA && okB && !masked {
		keys := slices.Collect(func(yield func(string) bool) {
			for k := range ma {
				if !yield(k) {
					return
				}
			}
			for k := range mb {
				if _, dup := ma[k]; !dup && !yield(k) {
					return
				}
			}
		})
		sort.Strings(keys)
		for _, k := range keys {
			x, hx := ma[k]
			y, hy := mb[k]
			diffValue(path+member(red.String(k)), k, x, y, hx, hy, red, out)
		}
		return
	}
	la, okA := a.([]any)
	lb, okB := b.([]any)
	if hasA && hasB && okA && okB && !masked {
		for i := range max(len(la), len(lb)) {
			var x, y any
			if i < len(la) {
				x = la[i]
			}
			if i < len(lb) {
				y = lb[i]
			}
			diffValue(path+"["+strconv.Itoa(i)+"]", "", x, y, i < len(la), i < len(lb), red, out)
		}
		return
	}
	show := func(v any, has bool) json.RawMessage {
		if !has {
			return nil
		}
		if masked {
			return quote(redact.Mask)
		}
		raw, _ := json.Marshal(v)
		// Value masks in place: it works on a copy.
		c, _ := decodeJSON(raw)
		shownRaw, _ := json.Marshal(red.Value(c))
		if len(shownRaw) > maxShown {
			// Too long to show whole: its start, as text.
			return quote(clip(string(shownRaw)))
		}
		return shownRaw
	}
	c := shown(path, show(a, hasA), show(b, hasB), a, b)
	if !hasA || !hasB {
		c.SecretDiffers = false
	}
	*out = append(*out, c)
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// member is the path step to a field: .name, or ["odd name"].
func member(k string) string {
	if identifier.MatchString(k) {
		return "." + k
	}
	b, _ := json.Marshal(k)
	return "[" + string(b) + "]"
}

// maxShown is how much of one value a change shows.
const maxShown = 200

// clip shortens s to about maxShown bytes, on a character boundary.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
