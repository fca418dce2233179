package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/gateway/admin"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/whatif"
)

// whatifCommand compares a candidate config with the config in force on
// stored events. Its exit status gates a deploy: 0 nothing differs, 1
// something does, 2 the comparison could not be made.
func (m *Main) whatifCommand() *cobra.Command {
	var cfgPath, currentPath, storeURL, hook, from, to string
	var since time.Duration
	var limit int
	var rf *remoteFlags
	cmd := &cobra.Command{
		Use:   "whatif",
		Short: "Show what a candidate config would do differently with the events stored recently",
		Long: `whatif runs the events stored in a window through the rules and actions of a
candidate config and of the config in force, and prints, per event and in
total, the actions gained, lost and changed (with the differences in method,
URL, headers and body of the rendered request, secrets masked). It sends
nothing and stores nothing.

The config in force is, with --server, the running server's (through
POST /api/v1/whatif, with a key holding the write scope); with --store,
the file --current names. A server and a store both given, by flag or
environment, are refused. Through --server, the server resolves the
candidate's ${VAR} with its own environment: they need not be set here,
where the candidate is checked with stand-in values. Both configs are
evaluated the same way, at the time each event was received (now() in a
template answers that time), so the config in force compared with itself
reports nothing. Events are
compared newest first, at most --limit of them: the newest of the window.

Exit status: 0 nothing differs, 1 something differs, 2 the comparison could
not be made (a bad flag, a candidate config that does not validate, a store
or server error).`,
		Example: `  hookrelay whatif --config new.yaml --store sqlite:///var/lib/hookrelay/hookrelay.db --current hookrelay.yaml
  hookrelay whatif --config new.yaml --server https://hooks.example.com --since 72h --json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("whatif takes no arguments, got %q", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if cfgPath == "" {
				return &exitError{code: 2, err: errors.New("--config: name the candidate config")}
			}
			if limit < 1 || limit > whatif.MaxLimit {
				return &exitError{code: 2, err: fmt.Errorf("--limit: want 1 to %d", whatif.MaxLimit)}
			}
			w, err := window(fl.Changed("since"), since, from, to, time.Now())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			w.Hook, w.Limit = hook, limit
			useServer, err := m.viaServer(cmd, true)
			if err != nil {
				return err
			}
			if useServer && currentPath != "" {
				return &exitError{code: 2, err: errors.New("--current: only with --store (through --server the config in force is the server's)")}
			}
			if !useServer && currentPath == "" {
				return &exitError{code: 2, err: errors.New("--current: with --store, name the config in force")}
			}

			// The candidate is validated first, as validate does; through a
			// server, whose environment resolves its variables, with
			// stand-ins for them.
			var candidate *config.Config
			if useServer {
				candidate, err = checkCandidate(cfgPath)
			} else {
				candidate, err = config.Load(cfgPath, m.LookupEnv)
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("candidate config: %w", err)}
			}
			var rep *whatif.Report
			if useServer {
				rep, err = m.whatifRemote(cmd.Context(), rf, candidate, w)
			} else {
				rep, err = m.whatifStore(cmd.Context(), storeURL, currentPath, candidate, w)
			}
			if err != nil {
				var ee *exitError
				if !errors.As(err, &ee) {
					err = &exitError{code: 2, err: err}
				}
				return err
			}
			if rf.json {
				raw, err := json.Marshal(rep)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if err := m.printJSON(raw); err != nil {
					return &exitError{code: 2, err: err}
				}
			} else if err := rep.WriteText(m.Stdout); err != nil {
				return &exitError{code: 2, err: err}
			}
			if rep.Differs() {
				return &exitError{code: 1, err: fmt.Errorf("the candidate config differs on %d of %d events", rep.Totals.Differing, rep.Totals.Events)}
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: 2, err: err} })
	rf = m.remoteFlags(cmd)
	cmd.PersistentFlags().Lookup("json").Usage = "print the report as JSON (see the README's What-if section)"
	fl := cmd.Flags()
	fl.StringVar(&cfgPath, "config", "", "the candidate config")
	fl.StringVar(&currentPath, "current", "", "with --store: the config in force now")
	fl.StringVar(&storeURL, "store", m.env("HOOKRELAY_STORE", ""), "compare on this store directly, as serve opens it (env HOOKRELAY_STORE); else through --server")
	fl.StringVar(&hook, "hook", "", "only this hook's events")
	fl.DurationVar(&since, "since", 24*time.Hour, "the window: events received this long ago until now")
	fl.StringVar(&from, "from", "", "the window's start (RFC 3339), instead of --since")
	fl.StringVar(&to, "to", "", "the window's end (RFC 3339; default now), with --from")
	fl.IntVar(&limit, "limit", whatif.DefaultLimit, "compare at most this many events, the newest of the window")
	return cmd
}

// window is the time window the flags name.
func window(sinceSet bool, since time.Duration, from, to string, now time.Time) (whatif.Window, error) {
	var w whatif.Window
	if sinceSet && (from != "" || to != "") {
		return w, errors.New("--since and --from/--to: give one")
	}
	if to != "" && from == "" {
		return w, errors.New("--to: give --from too")
	}
	if from == "" {
		if since <= 0 {
			return w, errors.New("--since: want a positive duration such as 24h")
		}
		return whatif.Window{From: now.Add(-since), To: now}, nil
	}
	var err error
	if w.From, err = time.Parse(time.RFC3339Nano, from); err != nil {
		return w, fmt.Errorf("--from %q: want an RFC 3339 time such as 2026-11-23T09:00:00Z", from)
	}
	w.To = now
	if to != "" {
		if w.To, err = time.Parse(time.RFC3339Nano, to); err != nil {
			return w, fmt.Errorf("--to %q: want an RFC 3339 time such as 2026-11-23T09:00:00Z", to)
		}
	}
	if !w.From.Before(w.To) {
		return w, errors.New("--from: the window must start before it ends")
	}
	return w, nil
}

// whatifStore compares on the store directly, against the config in force
// that currentPath names.
func (m *Main) whatifStore(ctx context.Context, storeURL, currentPath string, candidate *config.Config, w whatif.Window) (*whatif.Report, error) {
	current, err := config.Load(currentPath, m.LookupEnv)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("current config: %w", err)}
	}
	keys, err := m.encryptionKeys(m.env(envEncryptionKeyFile, ""))
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	st, _, err := openStore(ctx, storeURL, storeOpening{keys: keys})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	red := redact.Join(current.Redactor(), candidate.Redactor())
	return whatif.Run(ctx, st, current, candidate, w, red)
}

// whatifRemote sends the candidate to a running server, which compares it
// with its own config.
func (m *Main) whatifRemote(ctx context.Context, rf *remoteFlags, candidate *config.Config, w whatif.Window) (*whatif.Report, error) {
	c, err := rf.client()
	if err != nil {
		return nil, err
	}
	req := admin.WhatIfRequest{Path: candidate.Path, Files: map[string]string{}, Hook: w.Hook, From: w.From.UTC(), To: w.To.UTC(), Limit: w.Limit}
	for _, f := range candidate.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("candidate config: %w", err)}
		}
		req.Files[f] = string(b)
	}
	c.http.Timeout = 5 * time.Minute // a large window takes a while
	var rep whatif.Report
	if _, err := c.call(ctx, http.MethodPost, "/whatif", nil, req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// standIns are the values a candidate sent to a server is checked with
// here, for each variable, in the order tried: text fit for a secret or a
// token, empty (so that ${VAR:-default} takes its default), then values
// of the kinds a field may want.
var standIns = []func(name string) string{
	func(name string) string { return "stand-in-value-for-" + name },
	func(string) string { return "" },
	func(name string) string { return "http://stand-in.invalid/" + name },
	func(string) string {
		return "whsec_" + base64.StdEncoding.EncodeToString([]byte("hookrelay what-if stand-in value"))
	},
	func(string) string { return "1" },
	func(string) string { return "1s" },
	func(string) string { return "1/s" },
	func(string) string { return "127.0.0.1/32" },
}

// checkCandidate loads the candidate at path as the server will, but with
// a stand-in for each ${VAR}: the server resolves the real values, which
// this machine need not have. A stand-in can be of the wrong kind for its
// field (a URL, a duration): while an error stands on a line that reads a
// variable, the next stand-in of each variable there is tried, so that
// the candidate is refused here only for what no value could fix, such as
// its syntax, with its file:line:col: the errors of the try that had the
// fewest.
func checkCandidate(path string) (*config.Config, error) {
	pick := map[string]int{}
	lookup := func(name string) (string, bool) { return standIns[pick[name]](name), true }
	lines := map[string][]string{}
	var least config.Errors
	for {
		cfg, err := config.Load(path, lookup)
		var errs config.Errors
		if err == nil || !errors.As(err, &errs) {
			return cfg, err
		}
		if least == nil || len(errs) < len(least) {
			least = errs
		}
		next := map[string]bool{}
		for _, e := range errs {
			for _, name := range varsAt(lines, e.File, e.Line) {
				if pick[name] < len(standIns)-1 {
					next[name] = true
				}
			}
		}
		if len(next) == 0 {
			return nil, standInNote(lines, least)
		}
		for name := range next {
			pick[name]++
		}
	}
}

// standInNote is errs with a word on the variables its lines read, whose
// values in the messages are stand-ins.
func standInNote(lines map[string][]string, errs config.Errors) error {
	var names []string
	for _, e := range errs {
		for _, name := range varsAt(lines, e.File, e.Line) {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		return errs
	}
	return fmt.Errorf("%w\n(checked here with stand-in values for ${%s}, which the server resolves)", errs, strings.Join(names, "}, ${"))
}

// envRefRE finds the ${VAR} references of a line; "$${" is a literal "${".
var envRefRE = regexp.MustCompile(`\$*\$\{([A-Za-z_][A-Za-z0-9_]*)`)

// varsAt are the variables the value at line (1-based) of file refers to:
// on that line and on the lines of the same value after it (a block more
// indented, or the next items of a list), as an error about a list is
// reported at its first item. lines keeps each file's lines read so far.
func varsAt(lines map[string][]string, file string, line int) []string {
	ls, ok := lines[file]
	if !ok {
		data, _ := os.ReadFile(file)
		ls = strings.Split(string(data), "\n")
		lines[file] = ls
	}
	if line < 1 || line > len(ls) {
		return nil
	}
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	item := func(l string) bool { return strings.HasPrefix(strings.TrimLeft(l, " "), "- ") }
	first := ls[line-1]
	var names []string
	for i := line - 1; i < len(ls); i++ {
		l := ls[i]
		if i > line-1 && strings.TrimSpace(l) != "" && indent(l) <= indent(first) && !(indent(l) == indent(first) && item(first) && item(l)) {
			break
		}
		for _, m := range envRefRE.FindAllStringSubmatch(l, -1) {
			// An odd number of $ before the { is a reference.
			if dollars := strings.IndexByte(m[0], '{'); dollars%2 == 1 {
				names = append(names, m[1])
			}
		}
	}
	return names
}
