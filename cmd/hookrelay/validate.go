package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/config"
)

func (m *Main) validateCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config, its rule files and action templates",
		Long:  "validate loads and compiles the config exactly as serve would and reports every problem as file:line:col: message.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path, m.LookupEnv)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(m.Stderr, "warning: %s\n", w)
			}
			fmt.Fprintf(m.Stdout, "%s: ok (%d hooks, %d actions)\n", path, len(cfg.Hooks), len(cfg.Actions))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", m.env("HOOKRELAY_CONFIG", "hookrelay.yaml"), "config file (env HOOKRELAY_CONFIG)")
	return cmd
}
