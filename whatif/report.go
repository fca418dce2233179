package whatif

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/store"
)

// DefaultLimit is how many events a run compares when the caller names no
// limit; MaxLimit is the most it will.
const (
	DefaultLimit = 1000
	MaxLimit     = 100000
)

// Source is where the events come from: the store's admin listing, and
// each event whole (listings carry no body). Both only read.
type Source interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, string, error)
	Event(ctx context.Context, id string) (store.Event, error)
}

// Window selects the events to compare: those received in [From, To), of
// Hook when set, the newest Limit of them.
type Window struct {
	From, To time.Time
	Hook     string
	Limit    int
}

// Totals sum up a run.
type Totals struct {
	Events    int `json:"events"`    // events compared
	Differing int `json:"differing"` // events for which something differs
	Gained    int `json:"gained"`
	Lost      int `json:"lost"`
	Changed   int `json:"changed"`
}

// Report is the answer of a run: the events for which something differs,
// newest first, and the totals over every event compared.
type Report struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Hook  string    `json:"hook,omitempty"`
	Limit int       `json:"limit"`
	// Truncated: the window holds more events than Limit; the older ones
	// were not compared.
	Truncated bool    `json:"truncated"`
	Events    []Event `json:"events"`
	Totals    Totals  `json:"totals"`
}

// Differs reports whether anything differs in the report.
func (r *Report) Differs() bool { return r.Totals.Differing > 0 }

// Run compares current and candidate on the events of w, newest first,
// reading them from src and writing nothing anywhere. Every value in the
// report is shown through red.
func Run(ctx context.Context, src Source, current, candidate *config.Config, w Window, red *redact.Redactor) (*Report, error) {
	if w.Limit <= 0 {
		w.Limit = DefaultLimit
	}
	if w.Limit > MaxLimit {
		return nil, fmt.Errorf("limit: at most %d", MaxLimit)
	}
	if !w.From.IsZero() && !w.To.IsZero() && !w.From.Before(w.To) {
		return nil, errors.New("the window ends before it starts")
	}
	rep := &Report{From: w.From.UTC(), To: w.To.UTC(), Hook: w.Hook, Limit: w.Limit, Events: []Event{}}
	f := store.EventFilter{Hook: w.Hook, Since: w.From, Until: w.To}
	for {
		f.Limit = min(w.Limit-rep.Totals.Events, 1000)
		evs, next, err := src.ListEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		whole, err := readEvents(ctx, src, evs)
		if err != nil {
			return nil, err
		}
		for _, ev := range whole {
			if ev.ID == "" {
				continue // pruned meanwhile
			}
			rep.Totals.Events++
			e := Compare(current, candidate, ev, red)
			if !e.Differs() {
				continue
			}
			rep.Totals.Differing++
			rep.Totals.Gained += len(e.Gained)
			rep.Totals.Lost += len(e.Lost)
			rep.Totals.Changed += len(e.Changed)
			rep.Events = append(rep.Events, e)
		}
		if next == "" {
			return rep, nil
		}
		if rep.Totals.Events >= w.Limit {
			// A full page may name a next one that turns out empty.
			f.Cursor, f.Limit = next, 1
			more, _, err := src.ListEvents(ctx, f)
			if err != nil {
				return nil, err
			}
			rep.Truncated = len(more) > 0
			return rep, nil
		}
		f.Cursor = next
	}
}

// readers is how many events of a page Run reads at once: each read is a
// round trip to Redis, or a query on SQLite's pool of readers.
const readers = 16

// readEvents reads each listed event whole, in order, readers at a time.
// An event gone since it was listed (pruned) comes back empty.
func readEvents(ctx context.Context, src Source, listed []store.Event) ([]store.Event, error) {
	out := make([]store.Event, len(listed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readers)
	for i, l := range listed {
		g.Go(func() error {
			ev, err := src.Event(gctx, l.ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			out[i] = ev
			return err
		})
	}
	return out, g.Wait()
}

// WriteText writes the report for a terminal: one block per event that
// differs, then the totals. Values are those of the report, already masked.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, e := range r.Events {
		fmt.Fprintf(&b, "event %s  hook %s  received %s\n", e.ID, e.Hook, e.ReceivedAt.UTC().Format(time.RFC3339Nano))
		if e.Current != e.Candidate {
			fmt.Fprintf(&b, "  ! payload: current config: %s; candidate: %s\n", orOK(e.Current), orOK(e.Candidate))
		}
		for _, d := range e.Gained {
			fmt.Fprintf(&b, "  + gained  rule %s → action %s  %s\n", d.Rule, d.Action, target(d))
		}
		for _, d := range e.Lost {
			fmt.Fprintf(&b, "  - lost  rule %s → action %s\n", d.Rule, d.Action)
		}
		for _, d := range e.Changed {
			parts := make([]string, len(d.Changes))
			for i, c := range d.Changes {
				parts[i] = fmt.Sprintf("%s: %s → %s", c.Field, orNone(c.From), orNone(c.To))
				if c.SecretDiffers {
					parts[i] += " (the secret differs)"
				}
			}
			fmt.Fprintf(&b, "  ~ changed action %s: %s\n", d.Action, strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(&b, "%d events, %d gained, %d lost, %d changed\n", r.Totals.Events, r.Totals.Gained, r.Totals.Lost, r.Totals.Changed)
	if r.Truncated {
		fmt.Fprintf(&b, "the window holds more than %d events: only the newest %d were compared (raise --limit)\n", r.Limit, r.Limit)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func target(d Delivery) string {
	if d.Error != "" {
		return "(cannot be rendered: " + d.Error + ")"
	}
	return "(" + d.Method + " " + d.URL + ")"
}

func orOK(s string) string {
	if s == "" {
		return "accepted"
	}
	return s
}

func orNone(v []byte) string {
	if len(v) == 0 {
		return "(none)"
	}
	return string(v)
}
