package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// keysCommand manages admin API keys directly in the store, so that the
// first key can be made before any key exists.
func (m *Main) keysCommand() *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke admin API keys (works on the store directly)",
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", m.env("HOOKRELAY_STORE", ""), "store URL, as for serve (env HOOKRELAY_STORE)")

	var name, scopes string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key; its secret is printed once, alone on the last line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, secret, err := admin.NewKey(name, strings.Split(scopes, ","), time.Now().UTC())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			st, _, err := openStore(cmd.Context(), storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.CreateKey(cmd.Context(), k); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "created key %s %q with scopes %s (prefix %s); its secret is shown only now:\n%s\n",
				k.ID, k.Name, strings.Join(k.Scopes, ","), k.Prefix, secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the key is for")
	create.Flags().StringVar(&scopes, "scopes", admin.ScopeRead, "comma-separated: read, write, webhooks")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, _, err := openStore(cmd.Context(), storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.Keys(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tPREFIX\tSCOPES\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","),
					when(k.CreatedAt), when(k.LastUsedAt), when(k.RevokedAt))
			}
			return w.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key; every instance sharing the store refuses it at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := openStore(cmd.Context(), storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeKey(cmd.Context(), args[0], time.Now().UTC()); err != nil {
				return fmt.Errorf("revoke %s: %w", args[0], err)
			}
			fmt.Fprintf(m.Stdout, "revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
