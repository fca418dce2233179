package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// explainCommand is `events explain ID`: the event's trace, read from
// GET /api/v1/events/{id}, as text.
func (m *Main) explainCommand(rf *remoteFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "explain ID",
		Short: "Explain why an event did what it did: verification, key, every rule, every attempt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, raw, err := rf.event(cmd, args[0])
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			writeExplanation(m.Stdout, e)
			return nil
		},
	}
}

// timeMS writes a time to the millisecond, as it is stored.
const timeMS = "2006-01-02T15:04:05.000Z07:00"

// writeExplanation prints e's trace; every value passes through safe.
func writeExplanation(out io.Writer, e admin.EventView) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	line := func(format string, args ...any) {
		fmt.Fprintf(w, format+"\n", args...)
	}
	line("event\t%s", safe(e.ID))
	line("hook\t%s", safe(e.Hook))
	line("received\t%s", e.ReceivedAt.Format(timeMS))
	line("status\t%s", safe(e.Status))
	t := e.Trace
	if t == nil {
		line("trace\tnone: the server sent no trace")
		return
	}
	if v := t.Verification; v != nil {
		s := safe(v.Scheme)
		if v.Secret > 0 {
			s += fmt.Sprintf(", secret #%d matched", v.Secret)
		}
		if v.SignedAt != nil && v.SkewMS != nil {
			s += fmt.Sprintf(", signed %s, received %s later (skew)", v.SignedAt.Format(time.RFC3339), time.Duration(*v.SkewMS)*time.Millisecond)
		}
		line("verified\t%s", s)
	} else {
		line("verified\t(not recorded: the event was stored before traces were kept)")
	}
	key := safe(t.Idempotency.Key)
	if t.Idempotency.Source != "" {
		key += " (from " + safe(t.Idempotency.Source) + ")"
	}
	line("key\t%s", key)
	if t.Idempotency.Error != "" {
		line("\tthe key expression failed: %s", safe(t.Idempotency.Error))
	}
	dups := fmt.Sprint(t.Idempotency.Duplicates)
	if t.Idempotency.Duplicates == 0 {
		dups = "none"
	}
	line("duplicates\t%s", dups)
	for _, d := range t.Idempotency.Arrivals {
		line("\t%s answered as a %s", d.At.Format(timeMS), safe(d.Answer))
	}
	w.Flush()

	fmt.Fprintln(out, "rules:")
	if t.Rules == nil {
		fmt.Fprintln(out, "  (not recorded)")
	} else if len(t.Rules) == 0 {
		fmt.Fprintln(out, "  (the hook has none)")
	}
	for _, r := range t.Rules {
		s := safe(r.Result)
		if r.Error != "" {
			s += ": " + safe(r.Error)
		}
		fmt.Fprintf(out, "  rule %s: %s\n", safe(r.Rule), s)
		for _, f := range r.Fields {
			fmt.Fprintf(out, "    %s\n", safe(f.Explanation))
		}
	}

	fmt.Fprintln(out, "deliveries:")
	if len(t.Deliveries) == 0 {
		fmt.Fprintln(out, "  none: no rule matched, so the event is stored as ignored")
	}
	for _, d := range t.Deliveries {
		fmt.Fprintf(out, "  %s  rule %s → action %s: %s\n", safe(d.ID), safe(d.Rule), safe(d.Action), safe(d.Status))
		for _, a := range d.Attempts {
			fmt.Fprintf(out, "    %s\n", safe(a.Explanation))
		}
		if d.DeadBecause != "" {
			fmt.Fprintf(out, "    dead because %s\n", safe(d.DeadBecause))
		}
	}
}
