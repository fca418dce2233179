package main

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/config"
)

func (m *Main) validateCommand() *cobra.Command {
	var (
		path  string
		reads bool
	)
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config, its rule files and action templates",
		Long: "validate loads and compiles the config exactly as serve would and reports every problem as file:line:col: message.\n\n" +
			"--reads also lists, per hook, what its expressions evaluated at intake (its idempotency key, its rules' conditions, " +
			"its response and the order_by of the actions its rules name) read of a payload: the gateway checks every byte of a " +
			"payload but builds only that part of it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, m.LookupEnv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(m.Stderr, "warning: %s\n", w)
			}
			fmt.Fprintf(m.Stdout, "%s: ok (%d hooks, %d actions)\n", path, len(cfg.Hooks), len(cfg.Actions))
			if reads {
				printReads(m, cfg)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", m.env("HOOKRELAY_CONFIG", "hookrelay.yaml"), "config file (env HOOKRELAY_CONFIG)")
	cmd.Flags().BoolVar(&reads, "reads", false, "also list what each hook's expressions read of a payload")
	return cmd
}

// printReads lists, hook by hook, the part of a payload the gateway
// builds for the hook's expressions (config.Hook.Body).
func printReads(m *Main, cfg *config.Config) {
	names := make([]string, 0, len(cfg.Hooks))
	for n := range cfg.Hooks {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintln(m.Stdout, "\nwhat each hook reads of a payload at intake (its key, rules, response and order_by; the rest is checked, not built):")
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	for _, n := range names {
		read := cfg.Hooks[n].Body.String()
		switch {
		case read == "":
			read = "nothing"
		case read == "body":
			read = "the whole payload"
		default:
			read = strings.ReplaceAll(read, ", ", " · ")
		}
		fmt.Fprintf(tw, "  %s\t%s\n", n, read)
	}
	_ = tw.Flush()
}
