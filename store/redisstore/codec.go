package redisstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// Times are stored as unix milliseconds; the zero time as "".
func ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func parseMS(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return time.UnixMilli(n).UTC(), nil
}

// jsonField encodes maps and lists; nil and empty encode as "".
func jsonField[T any](v T, empty bool) (string, error) {
	if empty {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func parseJSON[T any](s string, v *T) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// An event is stored as one string, so that it costs Redis one key and one
// allocation, whatever its headers:
//
//	<status letter><received ms>|<meta length>|<body length>[flag]|<hook>\n<meta>\n<body><records>
//
// The status letter is a (accepted) or i (ignored); meta is the JSON of
// eventMeta, or that JSON sealed (package seal) when the store has keys;
// the body is kept as it came, or compressed with zstd when the length is
// followed by z, with S2 when by c, with S2 and a dictionary when by d
// (compress.go, dict.go), sealed when it is followed by s, and compressed
// then sealed when by x (zstd), y (S2) or w (S2 and a dictionary).
// Meta and body are sealed each on its own, bound to the event's id, and
// name the key that sealed them; the head and records stay in clear for
// the scripts. Records, each "\n" followed by a tag and a value, are what
// later changes add at the end: "D<delivery id>" for each of the event's
// deliveries, in the order stored, "R<rule>" for each
// matched rule and "U<arrival number>|<received ms>" for each of the last
// few duplicate arrivals (acceptScript). Scripts read the head and the
// records; only Go reads meta and body.

// eventMeta is the part of an event that scripts never read. Its trace is
// written as store.AppendTrace writes it, under "t".
type eventMeta struct {
	Key     string            `json:"k,omitempty"`
	Headers map[string]string `json:"h,omitempty"`
	Query   map[string]string `json:"q,omitempty"`
	Trace   *store.EventTrace `json:"-"`
}

// statusLetter is the status's letter in an event's head and in the names
// of its index.
func statusLetter(s store.EventStatus) string {
	if s == store.EventIgnored {
		return "i"
	}
	return "a"
}

func letterStatus(b byte) (store.EventStatus, bool) {
	switch b {
	case 'a':
		return store.EventAccepted, true
	case 'i':
		return store.EventIgnored, true
	}
	return "", false
}

// checkName refuses a hook, rule or delivery id that the event string or
// an index name could not carry.
func checkName(what, name string) error {
	if strings.ContainsAny(name, "\n|") {
		return fmt.Errorf("%s %q holds a newline or a |", what, name)
	}
	return nil
}

// encodeEvent is the stored string of e, with its rules and then the
// deliveries named by dlvs as records, its body compressed as p says when
// that is worth it.
// With keys, meta and body are sealed with their current key.
func encodeEvent(e store.Event, p packer, keys *seal.Keys, dlvs ...string) (string, error) {
	if e.Status != store.EventAccepted && e.Status != store.EventIgnored {
		return "", fmt.Errorf("event %s: status %q: want accepted or ignored", e.ID, e.Status)
	}
	if err := checkName("hook", e.Hook); err != nil {
		return "", fmt.Errorf("event %s: %w", e.ID, err)
	}
	meta, err := encodeMeta(eventMeta{Key: e.IdempotencyKey, Headers: e.Headers, Query: e.Query, Trace: e.Trace})
	if err != nil {
		return "", fmt.Errorf("event %s: %w", e.ID, err)
	}
	body, flag := compressBody(e.Body, p)
	if keys != nil {
		meta, body, flag = sealEvent(keys, e.ID, meta, body, flag)
	}
	var b strings.Builder
	b.Grow(48 + len(e.Hook) + len(meta) + len(body) + 16*len(e.MatchedRules) + 32*len(dlvs))
	b.WriteString(statusLetter(e.Status))
	writeEventParts(&b, e.ReceivedAt.UnixMilli(), e.Hook, meta, body, flag)
	for _, r := range e.MatchedRules {
		if err := checkName("rule", r); err != nil {
			return "", fmt.Errorf("event %s: %w", e.ID, err)
		}
		b.WriteString("\nR")
		b.WriteString(r)
	}
	for _, id := range dlvs {
		if err := checkName("delivery id", id); err != nil {
			return "", fmt.Errorf("event %s: %w", e.ID, err)
		}
		b.WriteString("\nD")
		b.WriteString(id)
	}
	return b.String(), nil
}

// encodeMeta is m's JSON, as encoding/json writes it but for the escaping
// of <, > and &, which it leaves as they are. It is written by hand because
// it is written for every event: with reflection it cost as much as the
// rest of the event's encoding. Text that is not valid UTF-8 goes through
// encoding/json, which replaces what is invalid.
func encodeMeta(m eventMeta) ([]byte, error) {
	valid := utf8.ValidString(m.Key)
	for _, mp := range []map[string]string{m.Headers, m.Query} {
		for k, v := range mp {
			valid = valid && utf8.ValidString(k) && utf8.ValidString(v)
		}
	}
	if !valid {
		var t json.RawMessage
		if m.Trace != nil {
			t = store.AppendTrace(nil, m.Trace)
		}
		return json.Marshal(struct {
			eventMeta
			T json.RawMessage `json:"t,omitempty"`
		}{m, t})
	}
	size := 64 + len(m.Key) + 32*(len(m.Headers)+len(m.Query))
	if m.Trace != nil {
		size += 64 + 128*len(m.Trace.Rules)
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	if m.Key != "" {
		b = append(b, `"k":`...)
		b = store.AppendJSONString(b, m.Key)
	}
	for _, f := range []struct {
		name string
		m    map[string]string
	}{{"h", m.Headers}, {"q", m.Query}} {
		if len(f.m) == 0 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":{`...)
		for i, k := range slices.Sorted(maps.Keys(f.m)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = store.AppendJSONString(b, k)
			b = append(b, ':')
			b = store.AppendJSONString(b, f.m[k])
		}
		b = append(b, '}')
	}
	if m.Trace != nil {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"t":`...)
		b = store.AppendTrace(b, m.Trace)
	}
	return append(b, '}'), nil
}

// writeEventParts writes what follows an event's status letter in its
// stored string, up to its records: the receipt, the lengths of meta and
// body with the body's flag, the hook, then meta and body.
func writeEventParts(b *strings.Builder, received int64, hook string, meta, body []byte, flag string) {
	b.WriteString(strconv.FormatInt(received, 10))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(len(meta)))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString(flag)
	b.WriteByte('|')
	b.WriteString(hook)
	b.WriteByte('\n')
	b.Write(meta)
	b.WriteByte('\n')
	b.Write(body)
}

// eventParts are the parts of an event's stored string, as stored.
type eventParts struct {
	status     byte
	received   int64
	hook       string
	meta, body string
	flag       string // what follows the body length: "", "z", "c", "d", "s", "x", "y" or "w"
	records    int    // where the records start in the string
}

// splitEvent cuts the stored string v of event id into its parts.
func splitEvent(id, v string) (eventParts, error) {
	var p eventParts
	bad := func(why string) (eventParts, error) {
		return p, fmt.Errorf("event %s: stored value: %s", id, why)
	}
	head, rest, ok := strings.Cut(v, "\n")
	if !ok || len(head) < 2 {
		return bad("no head")
	}
	p.status = head[0]
	parts := strings.SplitN(head[1:], "|", 4)
	if len(parts) != 4 {
		return bad("short head")
	}
	bodyField := parts[2]
	if n := len(bodyField); n > 0 && strings.IndexByte("zcdsxyw", bodyField[n-1]) >= 0 {
		bodyField, p.flag = bodyField[:n-1], bodyField[n-1:]
	}
	recv, err1 := strconv.ParseInt(parts[0], 10, 64)
	metaLen, err2 := strconv.Atoi(parts[1])
	bodyLen, err3 := strconv.Atoi(bodyField)
	if err1 != nil || err2 != nil || err3 != nil || metaLen < 0 || bodyLen < 0 || metaLen+1+bodyLen > len(rest) {
		return bad("bad head")
	}
	p.received, p.hook = recv, parts[3]
	p.meta, p.body = rest[:metaLen], rest[metaLen+1:metaLen+1+bodyLen]
	p.records = len(head) + 1 + metaLen + 1 + bodyLen
	return p, nil
}

// decodeEvent reads the stored string v of event id, with its body unless
// body is false, opening what is sealed with keys. Its delivery ids come
// back too, in the order stored. Its trace is left out: only decodeTrace
// reads it. When what is sealed does not open, the event comes back with
// what is kept in clear, and the error (*seal.RecordError).
func decodeEvent(o opener, id, v string, body bool) (store.Event, []string, error) {
	e := store.Event{ID: id}
	bad := func(why string) (store.Event, []string, error) {
		return e, nil, fmt.Errorf("event %s: stored value: %s", id, why)
	}
	p, err := splitEvent(id, v)
	if err != nil {
		return e, nil, err
	}
	var known bool
	if e.Status, known = letterStatus(p.status); !known {
		return bad("unknown status")
	}
	e.ReceivedAt = time.UnixMilli(p.received).UTC()
	e.Hook = p.hook
	var dlvs []string
	for _, r := range strings.Split(v[p.records:], "\n")[1:] {
		if r == "" {
			return bad("empty record")
		}
		switch r[0] {
		case 'D':
			dlvs = append(dlvs, r[1:])
		case 'R':
			if !slices.Contains(e.MatchedRules, r[1:]) {
				e.MatchedRules = append(e.MatchedRules, r[1:])
			}
		case 'U':
			n, at, ok := strings.Cut(r[1:], "|")
			count, err1 := strconv.Atoi(n)
			t, err2 := parseMS(at)
			if !ok || err1 != nil || err2 != nil {
				return bad("bad duplicate record")
			}
			e.Duplicates.Count = count
			e.Duplicates.Last = append(e.Duplicates.Last, t)
		default:
			return bad("unknown record")
		}
	}
	// The parts that may be sealed come last: when they do not open, the
	// event read so far is what is kept in clear.
	metaJSON, err := openMeta(o.keys, id, p.meta)
	if err != nil {
		return e, dlvs, err
	}
	meta, err := decodeMeta(metaJSON)
	if err != nil {
		return e, nil, fmt.Errorf("event %s: meta: %w", id, err)
	}
	e.IdempotencyKey, e.Headers, e.Query = meta.Key, meta.Headers, meta.Query
	if body {
		if e.Body, err = openBody(o, id, p.body, p.flag); err != nil {
			return e, dlvs, err
		}
	}
	return e, dlvs, nil
}

// decodeTrace reads the trace from the stored string v of event id; nil
// for an event stored without one.
func decodeTrace(keys *seal.Keys, id, v string) (*store.EventTrace, error) {
	p, err := splitEvent(id, v)
	if err != nil {
		return nil, err
	}
	metaJSON, err := openMeta(keys, id, p.meta)
	if err != nil {
		return nil, err
	}
	var m struct {
		T json.RawMessage `json:"t"`
	}
	if err := json.Unmarshal([]byte(metaJSON), &m); err != nil {
		return nil, fmt.Errorf("event %s: meta: %w", id, err)
	}
	return store.ParseTrace(m.T)
}

// decodeDelivery reads a delivery hash, its id added as field "id" (its id
// is in its key; scripts that return a delivery add it, and deliveries
// stored by earlier versions hold it too). A field left out reads as its
// zero value: a new delivery's hash has no attempts, error, lane or time
// of its last change until they are set (enqueueLua).
func decodeDelivery(m map[string]string) (store.Delivery, error) {
	d := store.Delivery{
		ID:        m["id"],
		EventID:   m["evt"],
		Hook:      m["hook"],
		Rule:      m["rule"],
		Action:    m["action"],
		Status:    store.DeliveryStatus(m["status"]),
		LastError: m["err"],
		Lane:      m["lane"],
	}
	var err error
	if n := m["n"]; n != "" {
		if d.Attempts, err = strconv.Atoi(n); err != nil {
			return d, fmt.Errorf("delivery %s: attempts %q: %w", d.ID, n, err)
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"due", &d.NextAttemptAt},
		{"lease", &d.LeasedUntil},
		{"created", &d.CreatedAt},
		{"updated", &d.UpdatedAt},
	} {
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return d, fmt.Errorf("delivery %s: field %s: %w", d.ID, f.name, err)
		}
	}
	if m["updated"] == "" {
		// Not written until the delivery changes (enqueueLua).
		d.UpdatedAt = d.CreatedAt
	}
	return d, nil
}

// attemptRecord is an attempt as stored in a delivery's attempts list.
// A response body that is not valid UTF-8 is kept in base64 so that it
// round-trips byte for byte.
type attemptRecord struct {
	DeliveryID     string            `json:"dlv"`
	N              int               `json:"n"`
	StartedAt      int64             `json:"started,omitempty"` // unix ms
	Duration       int64             `json:"dur,omitempty"`     // ns
	Method         string            `json:"method,omitempty"`
	URL            string            `json:"url,omitempty"`
	RequestHeaders map[string]string `json:"req_hdr,omitempty"`
	StatusCode     int               `json:"code,omitempty"`
	Error          string            `json:"err,omitempty"`
	ResponseBody   string            `json:"resp,omitempty"`
	ResponseBase64 string            `json:"resp_b64,omitempty"`
	Trace          *traceRecord      `json:"trace,omitempty"`
	Outcome        string            `json:"out,omitempty"`
	Reason         string            `json:"why,omitempty"`
	NextAttemptAt  int64             `json:"next,omitempty"` // unix ms
}

// traceRecord is an attempt's store.Trace, durations in nanoseconds.
type traceRecord struct {
	DNS       int64 `json:"dns,omitempty"`
	Connect   int64 `json:"conn,omitempty"`
	TLS       int64 `json:"tls,omitempty"`
	FirstByte int64 `json:"ttfb,omitempty"`
	Total     int64 `json:"total"`
	Reused    bool  `json:"reused,omitempty"`
}

func encodeAttempt(a store.Attempt) (string, error) {
	r := attemptRecord{
		DeliveryID:     a.DeliveryID,
		N:              a.N,
		Duration:       int64(a.Duration),
		Method:         a.Method,
		URL:            a.URL,
		RequestHeaders: a.RequestHeaders,
		StatusCode:     a.StatusCode,
		Error:          a.Error,
		Outcome:        string(a.Outcome),
		Reason:         a.Reason,
	}
	if !a.NextAttemptAt.IsZero() {
		r.NextAttemptAt = a.NextAttemptAt.UnixMilli()
	}
	if t := a.Trace; t != nil {
		r.Trace = &traceRecord{DNS: int64(t.DNS), Connect: int64(t.Connect), TLS: int64(t.TLS),
			FirstByte: int64(t.FirstByte), Total: int64(t.Total), Reused: t.Reused}
	}
	if !a.StartedAt.IsZero() {
		r.StartedAt = a.StartedAt.UnixMilli()
	}
	if utf8.ValidString(a.ResponseBody) {
		r.ResponseBody = a.ResponseBody
	} else {
		r.ResponseBase64 = base64.StdEncoding.EncodeToString([]byte(a.ResponseBody))
	}
	b, err := json.Marshal(r)
	return string(b), err
}

func decodeAttempt(s string) (store.Attempt, error) {
	var r attemptRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return store.Attempt{}, fmt.Errorf("attempt: %w", err)
	}
	a := store.Attempt{
		DeliveryID:     r.DeliveryID,
		N:              r.N,
		Duration:       time.Duration(r.Duration),
		Method:         r.Method,
		URL:            r.URL,
		RequestHeaders: r.RequestHeaders,
		StatusCode:     r.StatusCode,
		Error:          r.Error,
		ResponseBody:   r.ResponseBody,
		Outcome:        store.DeliveryStatus(r.Outcome),
		Reason:         r.Reason,
	}
	if r.NextAttemptAt != 0 {
		a.NextAttemptAt = time.UnixMilli(r.NextAttemptAt).UTC()
	}
	if t := r.Trace; t != nil {
		a.Trace = &store.Trace{DNS: time.Duration(t.DNS), Connect: time.Duration(t.Connect), TLS: time.Duration(t.TLS),
			FirstByte: time.Duration(t.FirstByte), Total: time.Duration(t.Total), Reused: t.Reused}
	}
	if r.StartedAt != 0 {
		a.StartedAt = time.UnixMilli(r.StartedAt).UTC()
	}
	if r.ResponseBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.ResponseBase64)
		if err != nil {
			return a, fmt.Errorf("attempt %d of %s: response body: %w", r.N, r.DeliveryID, err)
		}
		a.ResponseBody = string(b)
	}
	return a, nil
}

// fieldMap turns a field/value list returned by a script into a map.
func fieldMap(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected script reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok1 := list[i].(string)
		val, ok2 := list[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("unexpected field in script reply: %T %T", list[i], list[i+1])
		}
		m[k] = val
	}
	return m, nil
}

// deliveryListFields are the fields of a delivery hash that listings read:
// every one but the lease token (and the id, which the index gives).
var deliveryListFields = []string{"evt", "hook", "rule", "action", "status", "n", "due", "lease", "err", "created", "updated", "lane"}

// apiKeyFields is the API key hash as field/value arguments.
func apiKeyFields(k store.APIKey) ([]any, error) {
	scopes, err := jsonField(k.Scopes, len(k.Scopes) == 0)
	if err != nil {
		return nil, err
	}
	return []any{
		"id", k.ID,
		"name", k.Name,
		"prefix", k.Prefix,
		"hash", k.Hash,
		"scopes", scopes,
		"created", ms(k.CreatedAt),
		"used", ms(k.LastUsedAt),
		"revoked", ms(k.RevokedAt),
	}, nil
}

func decodeAPIKey(m map[string]string) (store.APIKey, error) {
	k := store.APIKey{ID: m["id"], Name: m["name"], Prefix: m["prefix"], Hash: m["hash"]}
	if err := parseJSON(m["scopes"], &k.Scopes); err != nil {
		return k, fmt.Errorf("api key %s: field scopes: %w", k.ID, err)
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"created", &k.CreatedAt},
		{"used", &k.LastUsedAt},
		{"revoked", &k.RevokedAt},
	} {
		var err error
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return k, fmt.Errorf("api key %s: field %s: %w", k.ID, f.name, err)
		}
	}
	return k, nil
}

// actionStateFields is the action state hash, minus its version, as
// field/value arguments. Every field is written, so that a write replaces
// the whole state.
func actionStateFields(s store.ActionState) []any {
	paused := "0"
	if s.Paused {
		paused = "1"
	}
	return []any{
		"action", s.Action,
		"paused", paused,
		"breaker", string(s.Breaker),
		"failures", s.Failures,
		"opens", s.Opens,
		"blocked", ms(s.BlockedUntil),
		"changed", ms(s.ChangedAt),
		"err", s.LastError,
	}
}

func decodeActionState(m map[string]string) (store.ActionState, error) {
	s := store.ActionState{
		Action:    m["action"],
		Paused:    m["paused"] == "1",
		Breaker:   store.BreakerState(m["breaker"]),
		LastError: m["err"],
	}
	var err error
	for _, f := range []struct {
		name string
		to   *int
	}{
		{"failures", &s.Failures},
		{"opens", &s.Opens},
	} {
		if v := m[f.name]; v != "" {
			if *f.to, err = strconv.Atoi(v); err != nil {
				return s, fmt.Errorf("action %s: field %s: %w", s.Action, f.name, err)
			}
		}
	}
	if v := m["version"]; v != "" {
		if s.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return s, fmt.Errorf("action %s: field version: %w", s.Action, err)
		}
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{
		{"blocked", &s.BlockedUntil},
		{"changed", &s.ChangedAt},
	} {
		if *f.to, err = parseMS(m[f.name]); err != nil {
			return s, fmt.Errorf("action %s: field %s: %w", s.Action, f.name, err)
		}
	}
	return s, nil
}

// fieldValues turns field/value arguments into the map a read of them
// would return.
func fieldValues(args []any) map[string]string {
	m := make(map[string]string, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		m[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	return m
}
