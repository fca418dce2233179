package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/store"
)

// storeCommand groups the operations on the store itself.
func (m *Main) storeCommand() *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Operate on the store directly (--store)",
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", m.env("HOOKRELAY_STORE", ""), "store URL, as for serve (env HOOKRELAY_STORE)")
	resetAck := &cobra.Command{
		Use:   "reset-ack",
		Short: "Accept that the store lost its data, so that every process is ready again within seconds",
		Long: `Accept that the store lost its data.

When a store loses its data (a Redis restarted without persistence, flushed
or replaced), every hookrelay process on it notices within seconds, logs an
error and answers /readyz with 503 until an operator accepts the loss: the
events acknowledged before it are gone and must be recovered from their
senders where they can be. reset-ack writes a new store identity that
records the acceptance; every process adopts it at its next check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.withStore(cmd.Context(), storeURL, func(st backend) error {
				id, prev, err := store.AcceptReset(cmd.Context(), st, time.Now())
				if err != nil {
					return err
				}
				switch {
				case prev.ID == "":
					fmt.Fprintf(m.Stdout, "the store had no identity; wrote %s\n", id.ID)
				case prev.State == store.IdentityLost:
					fmt.Fprintf(m.Stdout, "accepted the loss noticed at %s; the store identity is now %s\n", prev.CreatedAt.UTC().Format(time.RFC3339), id.ID)
				default:
					fmt.Fprintf(m.Stdout, "no loss was recorded (identity %s, %s since %s); wrote %s all the same\n",
						prev.ID, prev.State, prev.CreatedAt.UTC().Format(time.RFC3339), id.ID)
				}
				fmt.Fprintln(m.Stdout, "every process on the store is ready again within seconds")
				return nil
			})
		},
	}
	cmd.AddCommand(resetAck)
	return cmd
}
