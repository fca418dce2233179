package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

func (m *Main) actionsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "actions", Short: "Watch each action's queue and breaker, pause and resume actions on a running server"}
	rf := m.remoteFlags(cmd)

	list := &cobra.Command{
		Use: "list", Short: "List actions with their state and queue", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			var out struct {
				Data []admin.ActionView `json:"data"`
			}
			raw, err := c.call(cmd.Context(), http.MethodGet, "/actions", nil, nil, &out)
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			var gone []string
			t := newTable(m.Stdout, "NAME", "STATE", "IN FLIGHT", "DUE", "OLDEST DUE", "RATE", "CONCURRENCY")
			for _, a := range out.Data {
				oldest := "-"
				if a.OldestDueAt != nil {
					oldest = (time.Duration(a.OldestDueAgeSeconds * float64(time.Second))).Round(time.Second).String()
				}
				rate, conc := "-", "-"
				if a.Rate != nil {
					rate = *a.Rate
				}
				if a.Concurrency != nil {
					conc = strconv.Itoa(*a.Concurrency)
				}
				t.row(a.Name, actionState(a), a.InFlight, a.Due, oldest, rate, conc)
				if !a.InConfig {
					gone = append(gone, a.Name)
				}
			}
			t.flush()
			if len(gone) > 0 {
				fmt.Fprintf(m.Stdout, "not in the config any more: %s\n", safe(strings.Join(gone, ", ")))
			}
			return nil
		},
	}

	switchCommand := func(verb, short, path string) *cobra.Command {
		return &cobra.Command{
			Use: verb + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := rf.client()
				if err != nil {
					return err
				}
				var a admin.ActionView
				raw, err := c.call(cmd.Context(), http.MethodPost, "/actions/"+url.PathEscape(args[0])+"/"+path, nil, nil, &a)
				if err != nil {
					return err
				}
				if rf.json {
					return m.printJSON(raw)
				}
				fmt.Fprintf(m.Stdout, "action %s is %s (%d due, %d in flight)\n", safe(a.Name), safe(actionState(a)), a.Due, a.InFlight)
				// Resuming does not close a breaker: say why deliveries may still wait.
				if !a.Paused && a.Breaker.State != "closed" && a.Breaker.BlockedUntil != nil {
					fmt.Fprintf(m.Stdout, "its breaker is %s: the next attempt is a probe at %s\n", safe(a.Breaker.State), a.Breaker.BlockedUntil.Format(time.RFC3339))
				}
				return nil
			},
		}
	}
	pause := switchCommand("pause", "Stop attempting an action's deliveries, on every process; they stay queued", "pause")
	resume := switchCommand("resume", "Attempt a paused action's deliveries again", "resume")
	cmd.AddCommand(list, pause, resume)
	return cmd
}

// actionState is the one word an operator scans for: paused wins over the
// breaker, which wins over running.
func actionState(a admin.ActionView) string {
	switch {
	case a.Paused:
		return "paused"
	case a.Breaker.State != "" && a.Breaker.State != "closed":
		return a.Breaker.State
	}
	return "running"
}
