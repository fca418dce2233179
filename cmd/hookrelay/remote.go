package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// apiClient talks to a running server's admin API.
type apiClient struct {
	server string
	key    string
	http   *http.Client
}

type remoteFlags struct {
	server string
	key    string
	json   bool
}

func (m *Main) remoteFlags(cmd *cobra.Command) *remoteFlags {
	f := &remoteFlags{}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.server, "server", m.env("HOOKRELAY_SERVER", "http://127.0.0.1:8080"), "base URL of the running server (env HOOKRELAY_SERVER)")
	fl.StringVar(&f.key, "api-key", m.env("HOOKRELAY_API_KEY", ""), "admin API key (env HOOKRELAY_API_KEY)")
	fl.BoolVar(&f.json, "json", false, "print the API's JSON instead of a table")
	return f
}

// viaServer tells which way a command that works either through a running
// server or on the store directly goes, the same for every such command: a
// server given (--server or HOOKRELAY_SERVER) selects the server, a store
// given (--store or HOOKRELAY_STORE) the store, and both given are refused
// rather than one silently ignored. Given neither, the command goes the
// way def says (true: through the server).
func (m *Main) viaServer(cmd *cobra.Command, def bool) (bool, error) {
	server := m.given(cmd, "server", "HOOKRELAY_SERVER")
	store := m.given(cmd, "store", "HOOKRELAY_STORE")
	switch {
	case server != "" && store != "":
		return false, &exitError{code: 2, err: fmt.Errorf("give either --server (HOOKRELAY_SERVER) or --store (HOOKRELAY_STORE), not both: got %s and %s", server, store)}
	case server != "":
		return true, nil
	case store != "":
		return false, nil
	}
	return def, nil
}

// given says where the value of a flag that has an environment variable
// comes from: the flag typed, the variable set, or "" for neither.
func (m *Main) given(cmd *cobra.Command, flag, env string) string {
	if cmd.Flags().Changed(flag) {
		return "--" + flag
	}
	if m.env(env, "") != "" {
		return env
	}
	return ""
}

func (f *remoteFlags) client() (*apiClient, error) {
	if f.key == "" {
		return nil, &exitError{code: 2, err: fmt.Errorf("no API key: pass --api-key or set HOOKRELAY_API_KEY (make one with hookrelay keys create)")}
	}
	return &apiClient{server: strings.TrimRight(f.server, "/"), key: f.key, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// call sends a request and decodes a 2xx JSON answer into out; other
// answers become errors carrying the API's message.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body any, out any) ([]byte, error) {
	u := c.server + "/api/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
			return nil, fmt.Errorf("no server answers at %s (%v): start hookrelay serve, or point --server or HOOKRELAY_SERVER at the one that runs", safe(c.server), op.Err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s (%d)", method, safe(path), safeText(e.Error), resp.StatusCode)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// printJSON writes raw API JSON indented.
func (m *Main) printJSON(raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := m.Stdout.Write(buf.Bytes())
	return err
}

func addQuery(q url.Values, pairs ...string) url.Values {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			q.Set(pairs[i], pairs[i+1])
		}
	}
	return q
}

func (m *Main) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "List, show, explain and replay events on a running server"}
	rf := m.remoteFlags(cmd)

	var hook, status, since, until, cursor string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List events, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			q := addQuery(url.Values{}, "hook", hook, "status", status, "since", since, "until", until, "cursor", cursor)
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var page struct {
				Data []admin.EventView `json:"data"`
				Next string            `json:"next"`
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/events", q, nil, &page)
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			t := newTable(m.Stdout, "ID", "HOOK", "STATUS", "RECEIVED", "RULES")
			var unreadable []admin.EventView
			for _, e := range page.Data {
				t.row(e.ID, e.Hook, e.Status, e.ReceivedAt.Format(time.RFC3339), dash(strings.Join(e.MatchedRules, ",")))
				if e.Error != "" {
					unreadable = append(unreadable, e)
				}
			}
			t.flush()
			for _, e := range unreadable {
				fmt.Fprintf(m.Stdout, "! %s: %s\n", safe(e.ID), safe(e.Error))
			}
			if page.Next != "" {
				fmt.Fprintf(m.Stdout, "more: --cursor %s\n", safe(page.Next))
			}
			return nil
		},
	}
	lf := list.Flags()
	lf.StringVar(&hook, "hook", "", "only this hook")
	lf.StringVar(&status, "status", "", "accepted or ignored")
	lf.StringVar(&since, "since", "", "received at or after (RFC 3339)")
	lf.StringVar(&until, "until", "", "received before (RFC 3339)")
	lf.StringVar(&cursor, "cursor", "", "the next page, as printed by the previous one")
	lf.IntVar(&limit, "limit", 0, "how many (1-1000, default 100)")

	show := &cobra.Command{
		Use: "show ID", Short: "Show an event with its payload and deliveries", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, raw, err := rf.event(cmd, args[0])
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			fmt.Fprintf(m.Stdout, "event     %s\nhook      %s\nreceived  %s\nstatus    %s\nkey       %s\nrules     %s\n",
				safe(e.ID), safe(e.Hook), e.ReceivedAt.Format(time.RFC3339Nano), safe(e.Status), safe(e.IdempotencyKey), safe(dash(strings.Join(e.MatchedRules, ", "))))
			// JSON escapes control characters but not C1 or format
			// characters: safeText escapes those inside the strings.
			if pretty, err := json.MarshalIndent(e.Payload, "          ", "  "); err == nil && e.Payload != nil {
				fmt.Fprintf(m.Stdout, "payload   %s\n", safeText(string(pretty)))
			}
			if len(e.Deliveries) > 0 {
				fmt.Fprintln(m.Stdout, "deliveries:")
				m.deliveryTable(e.Deliveries)
			}
			return nil
		},
	}

	replay := &cobra.Command{
		Use: "replay ID", Short: "Re-run an event against the rules in force now", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			var out struct {
				Deliveries []string `json:"deliveries"`
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/events/"+url.PathEscape(args[0])+"/replay", nil, nil, &out)
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			if len(out.Deliveries) == 0 {
				fmt.Fprintln(m.Stdout, "no rule matches this event now: nothing enqueued")
				return nil
			}
			fmt.Fprintf(m.Stdout, "enqueued %d deliveries: %s\n", len(out.Deliveries), safe(strings.Join(out.Deliveries, ", ")))
			return nil
		},
	}
	cmd.AddCommand(list, show, m.explainCommand(rf), replay)
	return cmd
}

func (m *Main) deliveryTable(ds []admin.DeliveryView) {
	t := newTable(m.Stdout, "ID", "EVENT", "ACTION", "STATUS", "ATTEMPTS", "NEXT", "LAST ERROR")
	for _, d := range ds {
		next := "-"
		if d.NextAttemptAt != nil {
			next = d.NextAttemptAt.Format(time.RFC3339)
		}
		t.row(d.ID, d.EventID, d.Action, d.Status, d.Attempts, next, dash(d.LastError))
	}
	t.flush()
}

func (m *Main) deliveriesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "deliveries", Short: "List and retry deliveries on a running server"}
	rf := m.remoteFlags(cmd)

	var hook, action, status, event, cursor string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List deliveries, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			q := addQuery(url.Values{}, "hook", hook, "action", action, "status", status, "event_id", event, "cursor", cursor)
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var page struct {
				Data []admin.DeliveryView `json:"data"`
				Next string               `json:"next"`
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/deliveries", q, nil, &page)
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			m.deliveryTable(page.Data)
			if page.Next != "" {
				fmt.Fprintf(m.Stdout, "more: --cursor %s\n", safe(page.Next))
			}
			return nil
		},
	}
	lf := list.Flags()
	lf.StringVar(&hook, "hook", "", "only this hook")
	lf.StringVar(&action, "action", "", "only this action")
	lf.StringVar(&status, "status", "", "pending, retrying, succeeded or dead")
	lf.StringVar(&event, "event", "", "only this event's deliveries")
	lf.StringVar(&cursor, "cursor", "", "the next page, as printed by the previous one")
	lf.IntVar(&limit, "limit", 0, "how many (1-1000, default 100)")

	var all bool
	var rHook, rAction, rStatus string
	retry := &cobra.Command{
		Use:   "retry [ID]",
		Short: "Attempt a dead or retrying delivery now; with --all, every one matching the filter",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			if all == (len(args) == 1) {
				return &exitError{code: 2, err: fmt.Errorf("give a delivery id, or --all with optional --status/--hook/--action")}
			}
			if !all {
				var d admin.DeliveryView
				raw, err := c.call(cmd.Context(), http.MethodPost, "/deliveries/"+url.PathEscape(args[0])+"/retry", nil, nil, &d)
				if err != nil {
					return err
				}
				if rf.json {
					return m.printJSON(raw)
				}
				fmt.Fprintf(m.Stdout, "delivery %s is due now (%d attempts so far)\n", safe(d.ID), d.Attempts)
				return nil
			}
			var out struct {
				Retried int `json:"retried"`
				Skipped int `json:"skipped"`
			}
			body := map[string]string{"status": rStatus, "hook": rHook, "action": rAction}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/deliveries/retry", nil, body, &out)
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			fmt.Fprintf(m.Stdout, "retried %d deliveries (%d skipped: taken by a worker or changed meanwhile)\n", out.Retried, out.Skipped)
			return nil
		},
	}
	rfl := retry.Flags()
	rfl.BoolVar(&all, "all", false, "retry every delivery matching the filter")
	rfl.StringVar(&rStatus, "status", "dead", "with --all: dead or retrying")
	rfl.StringVar(&rHook, "hook", "", "with --all: only this hook")
	rfl.StringVar(&rAction, "action", "", "with --all: only this action")
	cmd.AddCommand(list, retry)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// event reads one event from the server, as a view and as sent.
func (rf *remoteFlags) event(cmd *cobra.Command, id string) (admin.EventView, []byte, error) {
	var e admin.EventView
	c, err := rf.client()
	if err != nil {
		return e, nil, err
	}
	raw, err := c.call(cmd.Context(), http.MethodGet, "/events/"+url.PathEscape(id), nil, nil, &e)
	return e, raw, err
}
