package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/store"
)

// storeCommand groups the operations on the store itself.
func (m *Main) storeCommand() *cobra.Command {
	var storeURL, keyFile string
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Operate on the store directly (--store)",
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", m.env("HOOKRELAY_STORE", ""), "store URL, as for serve (env HOOKRELAY_STORE)")
	cmd.PersistentFlags().StringVar(&keyFile, "encryption-key-file", m.env(envEncryptionKeyFile, ""), "file holding the keys that seal stored event payloads, as for serve (env "+envEncryptionKeyFile+")")
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
			return m.withStore(cmd.Context(), storeURL, storeOpening{lost: true}, func(st backend) error {
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
	identity := &cobra.Command{
		Use:   "identity",
		Short: "Print the store's identity, for serve --expect-store",
		Long: `Print the store's identity: a random id the first serve writes into the
store, and a reset-ack replaces. A store that loses its data loses it too.

Running processes notice that within seconds. A process that starts on a
store emptied while none ran would take it for a new one: start serve with
--expect-store (or HOOKRELAY_EXPECT_STORE) set to this id, and it marks such
a store lost and stays not ready until an operator runs reset-ack. After a
reset-ack, set it to the new id.

The id alone is printed on standard output; its state and age on standard
error.`,
		Example: `  export HOOKRELAY_EXPECT_STORE=$(hookrelay store identity --store redis://127.0.0.1:6379/0)`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.withStore(cmd.Context(), storeURL, storeOpening{lost: true}, func(st backend) error {
				id, err := st.Identity(cmd.Context())
				if errors.Is(err, store.ErrNotFound) {
					return errors.New("the store holds no identity: the first serve on it writes one")
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(m.Stdout, id.ID)
				fmt.Fprintf(m.Stderr, "%s since %s", id.State, id.CreatedAt.UTC().Format(time.RFC3339))
				if id.Previous != "" {
					fmt.Fprintf(m.Stderr, ", after %s", id.Previous)
				}
				fmt.Fprintln(m.Stderr)
				return nil
			})
		},
	}
	cmd.AddCommand(resetAck, identity, m.rotateKeyCommand(&storeURL, &keyFile))
	return cmd
}

// rotateKeyCommand seals every stored event under the current key.
func (m *Main) rotateKeyCommand(storeURL, keyFile *string) *cobra.Command {
	var (
		batch int
		from  string
	)
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Seal every stored event under the current encryption key, batch by batch",
		Long: `Seal every stored event under the current encryption key: the first key of
` + envEncryptionKey + ` (or of the key file). Events stored in clear, or sealed
with an older key of the ring, are rewritten; those already under the
current key are skipped, so the command can be run again, or resumed with
--from, at any time. It reads the events in id order, batch by batch, and
prints its progress after each batch. An event sealed with a key the ring
does not hold stops it with an error naming the key, before anything of
that batch is rewritten. Serving processes may run meanwhile: start them
with the new ring first, so that what they write is under the current key.`,
		Example: `  export ` + envEncryptionKey + `="k2:$(openssl rand -base64 32),k1:<the previous key>"
  hookrelay store rotate-key --store sqlite:///var/lib/hookrelay/hookrelay.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--batch %d: want at least 1", batch)}
			}
			keys, err := m.encryptionKeys(*keyFile)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if keys == nil {
				return &exitError{code: 2, err: fmt.Errorf("rotate-key seals with the first key of %s or of the key file (--encryption-key-file, %s); neither is set", envEncryptionKey, envEncryptionKeyFile)}
			}
			ctx := cmd.Context()
			st, where, err := openStore(ctx, *storeURL, storeOpening{keys: keys})
			if err != nil {
				return err
			}
			defer st.Close()
			fmt.Fprintf(m.Stdout, "sealing the events of %s under key %s\n", where, keys.Current())
			var examined, resealed int
			after := from
			for {
				r, err := st.Reseal(ctx, after, batch)
				if err != nil {
					return fmt.Errorf("%w\nthe events before it are done: go on with --from %s once the keys are right", err, orStart(after))
				}
				examined += r.Examined
				resealed += r.Resealed
				if r.Next == "" {
					break
				}
				fmt.Fprintf(m.Stdout, "%d events examined, %d sealed anew, up to %s\n", examined, resealed, r.Next)
				after = r.Next
			}
			fmt.Fprintf(m.Stdout, "done: %d events examined, %d sealed anew under %s, %d already were\n", examined, resealed, keys.Current(), examined-resealed)
			return nil
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 500, "events read and sealed per batch")
	cmd.Flags().StringVar(&from, "from", "", "go on after this event id, as a progress line printed it")
	return cmd
}

// orStart is id, or "" quoted for the start.
func orStart(id string) string {
	if id == "" {
		return `""`
	}
	return id
}
