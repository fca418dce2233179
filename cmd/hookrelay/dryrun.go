package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/whatif"
)

// inbound is a payload as a sender would post it to a hook.
type inbound struct {
	cfg    *config.Config
	hook   *config.Hook
	body   []byte
	header http.Header
	now    time.Time
}

func (m *Main) loadInbound(cfgPath, hookName, payload string, headers []string) (*inbound, error) {
	cfg, err := config.Load(cfgPath, m.LookupEnv)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	hook, ok := cfg.Hooks[hookName]
	if !ok {
		return nil, &exitError{code: 2, err: fmt.Errorf("no hook %q in %s (hooks: %s)", hookName, cfgPath, strings.Join(cfg.HookNames(), ", "))}
	}
	var body []byte
	if payload == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(payload)
	}
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("payload: %w", err)}
	}
	in := &inbound{cfg: cfg, hook: hook, body: body, header: http.Header{}, now: time.Now().UTC()}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, &exitError{code: 2, err: fmt.Errorf("--header %q: want 'Name: value'", h)}
		}
		in.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if in.header.Get("Content-Type") == "" {
		in.header.Set("Content-Type", "application/json")
	}
	return in, nil
}

// sign adds what a real sender would add: the signature, and basic auth
// or the header token when the hook asks for them.
func (in *inbound) sign() {
	in.hook.Sender().Sign(in.header, in.body, in.now)
}

func (m *Main) testCommand() *cobra.Command {
	var cfgPath, hookName, payload string
	var headers []string
	var sign bool
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Dry run: show what a payload would do, sending and storing nothing",
		Long: "test runs a payload through a hook as the gateway would: verification, the idempotency key,\n" +
			"every rule, and every request that would be sent (secrets redacted). Nothing is sent or stored.\n" +
			"It exits 1 when verification fails.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := m.loadInbound(cfgPath, hookName, payload, headers)
			if err != nil {
				return err
			}
			if sign {
				in.sign()
			}
			return m.dryRun(in)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgPath, "config", m.env("HOOKRELAY_CONFIG", "hookrelay.yaml"), "config file (env HOOKRELAY_CONFIG)")
	fl.StringVar(&hookName, "hook", "", "hook name")
	fl.StringVar(&payload, "payload", "", "payload file (- for standard input)")
	fl.StringArrayVar(&headers, "header", nil, "request header 'Name: value' (repeatable)")
	fl.BoolVar(&sign, "sign", false, "sign the payload with the hook's own secret first")
	_ = cmd.MarkFlagRequired("hook")
	_ = cmd.MarkFlagRequired("payload")
	return cmd
}

// dryRun prints what in would do. Everything it prints passes through the
// config's Redactor: a dry run shows the requests, not the secrets in them.
func (m *Main) dryRun(in *inbound) error {
	var out bytes.Buffer
	defer func() { _, _ = io.WriteString(m.Stdout, in.cfg.Redactor().String(out.String())) }()
	return in.dryRun(&out)
}

func (in *inbound) dryRun(out io.Writer) error {
	h := in.hook
	fmt.Fprintf(out, "hook:     %s (verify: %s)\n", h.Name, h.Verifier.Scheme())
	proof, verifyErr := h.Verifier.Check(in.header, in.body, in.now)
	switch {
	case verifyErr != nil:
		fmt.Fprintf(out, "verify:   FAIL: %v\n", verifyErr)
	case proof.Secret > 0:
		fmt.Fprintf(out, "verify:   pass (secret #%d)\n", proof.Secret)
	default:
		fmt.Fprintf(out, "verify:   pass\n")
	}
	body, err := rules.DecodeBodyWithin(in.body, in.header.Get("Content-Type"), rules.DefaultMaxDepth, in.cfg.Evaluation.MaxValues())
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, rules.ErrTooManyValues) {
			status = http.StatusRequestEntityTooLarge
		}
		fmt.Fprintf(out, "payload:  invalid: %v (the gateway answers %d)\n", err, status)
		return &exitError{code: 1, err: fmt.Errorf("the payload would be refused")}
	}
	headers := make(map[string]string, len(in.header))
	for k, v := range in.header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	ev := store.Event{ID: "evt_dry_run", Hook: h.Name, ReceivedAt: in.now, Headers: headers, Query: map[string]string{}, Body: in.body}
	env := rules.NewEnv(ev, body).Limit(in.cfg.Evaluation)
	key, source, keyErr := h.KeyWithSource(in.header, env, in.body)
	key = in.cfg.ShownKey(h.Name, key)
	if keyErr != nil {
		fmt.Fprintf(out, "key:      %s (the key expression failed: %s)\n", safe(key), safe(keyErr.Error()))
	} else {
		fmt.Fprintf(out, "key:      %s (from %s)\n", safe(key), safe(source))
	}

	// One evaluation, as the gateway's: its trace says why each rule
	// matched or not.
	_, _, _, trace := h.Rules.Trace(env)
	fmt.Fprintln(out, "rules:")
	width := 0
	for _, r := range trace {
		width = max(width, utf8.RuneCountInString(safe(r.Rule)))
	}
	for i, r := range trace {
		switch r.Result {
		case store.RuleError:
			fmt.Fprintf(out, "  %-*s  error: %s\n", width, safe(r.Rule), safe(r.Error))
		case store.RuleMatched:
			fmt.Fprintf(out, "  %-*s  matched  → %s\n", width, safe(r.Rule), strings.Join(h.Rules.Rules[i].Actions, ", "))
		default:
			fmt.Fprintf(out, "  %-*s  no\n", width, safe(r.Rule))
		}
		for _, f := range r.Fields {
			// As the admin API shows it: a credential's value never.
			f.Value = in.cfg.Redactor().Read(f.Field, f.Value)
			wanted := make([]string, len(f.Wanted)) // f.Wanted is the compiled rule's own
			for i, w := range f.Wanted {
				wanted[i] = in.cfg.Redactor().Read(f.Field, w)
			}
			f.Wanted = wanted
			fmt.Fprintf(out, "    %s\n", safe(f.Explain()))
		}
	}
	if len(trace) == 0 {
		fmt.Fprintln(out, "  (none)")
	}

	planned := whatif.Render(in.cfg, h, env.At(in.now))
	if len(planned) == 0 {
		fmt.Fprintln(out, "requests: none (the event would be stored as ignored)")
	} else {
		fmt.Fprintln(out, "requests:")
	}
	for _, p := range planned {
		fmt.Fprintf(out, "  %s (rule %s)\n", p.Action, p.Rule)
		if act := in.cfg.Actions[p.Action]; act != nil && act.OrderBy != nil {
			if lane, err := act.Lane(env); err != nil {
				fmt.Fprintf(out, "    lane: none, delivered unordered (order_by %s: %s)\n", safe(act.OrderBy.Source()), safe(err.Error()))
			} else {
				fmt.Fprintf(out, "    lane: %s (order_by %s)\n", safe(in.cfg.Redactor().String(lane)), safe(act.OrderBy.Source()))
			}
		}
		if p.Err != nil {
			fmt.Fprintf(out, "    cannot be rendered, the delivery would be dead: %s\n", safe(p.Err.Error()))
			continue
		}
		req := p.Request
		if err := actions.CheckBearer(req.Header, in.now); err != nil {
			fmt.Fprintf(out, "    would not be sent, the delivery would be dead: %s\n", safe(err.Error()))
		}
		fmt.Fprintf(out, "    %s %s\n", safe(req.Method), safe(in.cfg.Redactor().URL(req.URL)))
		red := in.cfg.Redactor().Header(req.Header)
		red["Idempotency-Key"] = "<delivery id>"
		names := make([]string, 0, len(red))
		for k := range red {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(out, "    %s: %s\n", safe(k), safe(red[k]))
		}
		if a := in.cfg.Actions[p.Action]; a != nil && a.Signing() != "" {
			// The signature exists only at send time: it covers the
			// attempt's time and the delivery id, which a dry run has not.
			for _, k := range a.SignedHeaders() {
				switch strings.ToLower(k) {
				case "webhook-id":
					fmt.Fprintf(out, "    %s: <delivery id, the same on every attempt>\n", k)
				case "webhook-timestamp":
					fmt.Fprintf(out, "    %s: <time of each attempt>\n", k)
				default:
					fmt.Fprintf(out, "    %s (computed at each attempt over the body below)\n", k)
				}
			}
			fmt.Fprintf(out, "    signed:   %s\n", safe(a.Signing()))
		}
		if len(req.Body) > 0 {
			var pretty bytes.Buffer
			if json.Indent(&pretty, req.Body, "    ", "  ") == nil {
				fmt.Fprintf(out, "    %s\n", safeText(pretty.String()))
			} else {
				fmt.Fprintf(out, "    %s\n", safeText(string(req.Body)))
			}
		}
	}
	fmt.Fprintln(out, "nothing was sent and nothing was stored")
	if verifyErr != nil {
		return &exitError{code: 1, err: fmt.Errorf("verification would fail: the gateway answers 401")}
	}
	return nil
}

func (m *Main) signCommand() *cobra.Command {
	var cfgPath, hookName, payload, curlURL string
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Print the headers a real sender would add to a payload",
		Long: "sign prints, one per line, the headers a real sender of the hook would add (its signature,\n" +
			"and basic auth or the header token when the hook asks for them). With --curl BASE it prints a\n" +
			"complete curl command posting the payload to the hook at BASE instead.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := m.loadInbound(cfgPath, hookName, payload, nil)
			if err != nil {
				return err
			}
			in.sign()
			names := make([]string, 0, len(in.header))
			for k := range in.header {
				names = append(names, k)
			}
			sort.Strings(names)
			if curlURL == "" {
				for _, k := range names {
					for _, v := range in.header[k] {
						fmt.Fprintf(m.Stdout, "%s: %s\n", k, v)
					}
				}
				return nil
			}
			u := strings.TrimRight(curlURL, "/") + "/hooks/catch/" + in.hook.Name
			if in.hook.Token != "" {
				u += "/" + in.hook.Token
			}
			fmt.Fprintf(m.Stdout, "curl -i %s", shellQuote(u))
			for _, k := range names {
				for _, v := range in.header[k] {
					fmt.Fprintf(m.Stdout, " \\\n  -H %s", shellQuote(k+": "+v))
				}
			}
			fmt.Fprintf(m.Stdout, " \\\n  --data-binary @%s\n", shellQuote(payload))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgPath, "config", m.env("HOOKRELAY_CONFIG", "hookrelay.yaml"), "config file (env HOOKRELAY_CONFIG)")
	fl.StringVar(&hookName, "hook", "", "hook name")
	fl.StringVar(&payload, "payload", "", "payload file")
	fl.StringVar(&curlURL, "curl", "", "print a curl command posting to the server at this base URL")
	_ = cmd.MarkFlagRequired("hook")
	_ = cmd.MarkFlagRequired("payload")
	return cmd
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
