package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// pageSize is how many rows a listing shows at once.
const pageSize = "50"

// timeInput is how the filter form's datetime-local fields are read: UTC,
// as every time on the dashboard is shown.
const timeInput = "2006-01-02T15:04"

type activityData struct {
	Events []admin.EventView
	Next   string
	Hooks  []admin.HookView
	Live   string // the rows URL the page polls; empty past the first page
}

// eventQuery turns the filter form into the API's query.
func eventQuery(in url.Values) (url.Values, error) {
	q := url.Values{"limit": {pageSize}}
	for _, k := range []string{"hook", "status", "cursor"} {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	for _, k := range []string{"since", "until"} {
		v := strings.TrimSpace(in.Get(k))
		if v == "" {
			continue
		}
		t, err := time.Parse(timeInput, v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return nil, &apiError{http.StatusBadRequest, k + ": want a time such as 2026-11-23T09:00 (UTC)"}
			}
		}
		q.Set(k, t.UTC().Format(time.RFC3339Nano))
	}
	return q, nil
}

func (d *Dashboard) listEvents(r *http.Request, s *session) (activityData, error) {
	var data activityData
	q, err := eventQuery(r.URL.Query())
	if err != nil {
		return data, err
	}
	var out struct {
		Data []admin.EventView
		Next string
	}
	if err := d.call(r, s.secret, http.MethodGet, "/events", q, &out); err != nil {
		return data, err
	}
	data.Events, data.Next = out.Data, out.Next
	return data, nil
}

// activity is the activity log: events newest first, filtered, kept up to
// date by the page's script through activityRows.
func (d *Dashboard) activity(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Activity", "activity"
	data, err := d.listEvents(r, s)
	if err == nil && v.Filters.Get("cursor") == "" {
		data.Live = "/ui/rows"
		if len(v.Filters) > 0 {
			data.Live += "?" + v.Filters.Encode()
		}
	}
	// The hook filter offers the hooks the key may list; a key that may
	// not types the name.
	var hooks struct{ Data []admin.HookView }
	if d.call(r, s.secret, http.MethodGet, "/hooks", nil, &hooks) == nil {
		data.Hooks = hooks.Data
	}
	v.Data = data
	return "activity", err
}

// activityRows is the activity log's table body alone, for the page's
// script to swap in.
func (d *Dashboard) activityRows(r *http.Request, s *session, v *view) (string, error) {
	v.Nav = "fragment"
	data, err := d.listEvents(r, s)
	v.Data = data
	return "activity", err
}

// eventData is an event as the API shows it, its payload kept as the API
// wrote it so that it keeps its key order when indented.
type eventData struct {
	admin.EventView
	Payload json.RawMessage `json:"payload"`
}

func (e eventData) Pretty() string { return prettyJSON(e.Payload) }

func (d *Dashboard) event(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Event", "activity"
	var ev eventData
	err := d.call(r, s.secret, http.MethodGet, path("events", r.PathValue("id")), nil, &ev)
	v.Data = ev
	if err != nil {
		return "", err
	}
	return "event", nil
}

func (d *Dashboard) replay(r *http.Request, s *session) (string, string, error) {
	id := r.PathValue("id")
	var out struct {
		Deliveries []string
		Message    string
	}
	if err := d.call(r, s.secret, http.MethodPost, path("events", id, "replay"), nil, &out); err != nil {
		return "", "", err
	}
	msg := out.Message
	if msg == "" {
		msg = "replayed: " + plural(len(out.Deliveries), "new delivery", "new deliveries")
	}
	return "/ui/events/" + url.PathEscape(id), msg, nil
}

func (d *Dashboard) delivery(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Delivery", "activity"
	var dl admin.DeliveryView
	err := d.call(r, s.secret, http.MethodGet, path("deliveries", r.PathValue("id")), nil, &dl)
	v.Data = dl
	if err != nil {
		return "", err
	}
	return "delivery", nil
}

func (d *Dashboard) retry(r *http.Request, s *session) (string, string, error) {
	id := r.PathValue("id")
	if err := d.call(r, s.secret, http.MethodPost, path("deliveries", id, "retry"), nil, nil); err != nil {
		return "", "", err
	}
	return "/ui/deliveries/" + url.PathEscape(id), "retry scheduled: the delivery is due now", nil
}

type deadData struct {
	Deliveries []admin.DeliveryView
	Next       string
	Hook       string
	Action     string
}

func (d *Dashboard) dead(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Dead deliveries", "dead"
	in := r.URL.Query()
	q := url.Values{"status": {"dead"}, "limit": {pageSize}}
	data := deadData{Hook: in.Get("hook"), Action: in.Get("action")}
	for _, k := range []string{"hook", "action", "cursor"} {
		if x := in.Get(k); x != "" {
			q.Set(k, x)
		}
	}
	var out struct {
		Data []admin.DeliveryView
		Next string
	}
	err := d.call(r, s.secret, http.MethodGet, "/deliveries", q, &out)
	data.Deliveries, data.Next = out.Data, out.Next
	v.Data = data
	return "dead", err
}

func (d *Dashboard) retryDead(r *http.Request, s *session) (string, string, error) {
	q := url.Values{"status": {"dead"}}
	back := url.Values{}
	for _, k := range []string{"hook", "action"} {
		if x := strings.TrimSpace(r.PostFormValue(k)); x != "" {
			q.Set(k, x)
			back.Set(k, x)
		}
	}
	var out struct{ Retried, Skipped int }
	if err := d.call(r, s.secret, http.MethodPost, "/deliveries/retry", q, &out); err != nil {
		return "", "", err
	}
	next := "/ui/dead"
	if len(back) > 0 {
		next += "?" + back.Encode()
	}
	msg := "retried " + plural(out.Retried, "dead delivery", "dead deliveries")
	if out.Skipped > 0 {
		msg += "; " + plural(out.Skipped, "was", "were") + " taken or changed meanwhile"
	}
	return next, msg, nil
}

func (d *Dashboard) actions(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Actions", "actions"
	var out struct{ Data []admin.ActionView }
	err := d.call(r, s.secret, http.MethodGet, "/actions", nil, &out)
	v.Data = out.Data
	return "actions", err
}

func (d *Dashboard) switchAction(r *http.Request, s *session) (string, string, error) {
	name, verb := r.PathValue("name"), r.PathValue("verb")
	if verb != "pause" && verb != "resume" {
		return "", "", &apiError{http.StatusNotFound, "want pause or resume"}
	}
	if err := d.call(r, s.secret, http.MethodPost, path("actions", name, verb), nil, nil); err != nil {
		return "", "", err
	}
	return "/ui/actions", "action " + name + " " + verb + "d", nil
}

func (d *Dashboard) hooks(r *http.Request, s *session, v *view) (string, error) {
	v.Title, v.Nav = "Hooks", "hooks"
	var out struct{ Data []admin.HookView }
	err := d.call(r, s.secret, http.MethodGet, "/hooks", nil, &out)
	v.Data = out.Data
	return "hooks", err
}

func (d *Dashboard) testHook(r *http.Request, s *session) (string, string, error) {
	id := r.PathValue("id")
	var out struct {
		Accepted bool
		Status   int
		Response any
	}
	if err := d.call(r, s.secret, http.MethodPost, path("hooks", id, "test"), nil, &out); err != nil {
		return "", "", err
	}
	answer, _ := json.Marshal(out.Response)
	msg := "test ping to " + id + ": accepted, " + string(answer)
	if !out.Accepted {
		msg = "test ping to " + id + ": refused with " + http.StatusText(out.Status) + ", " + string(answer)
	}
	return "/ui/hooks", msg, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
