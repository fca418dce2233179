package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/gateway/admin"
)

// keysCommand manages admin API keys directly in the store, so that the
// first key can be made before any key exists; with a server (--server or
// HOOKRELAY_SERVER) it goes through a running server's admin API instead,
// as the key given with --api-key, which can manage only keys within its
// own scopes.
func (m *Main) keysCommand() *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke admin API keys (on the store directly, or with --server through the admin API)",
		Long: `Create, list and revoke admin API keys.

Without a server, the commands work on the store directly (--store or
HOOKRELAY_STORE), which is how the first key is made. With a server
(--server or HOOKRELAY_SERVER) they go through that server's admin API as
the key given with --api-key (or HOOKRELAY_API_KEY), which can create, see
and revoke only keys whose scopes it holds itself. A server and a store
both given, by flag or environment, are refused.`,
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", m.env("HOOKRELAY_STORE", ""), "store URL, as for serve (env HOOKRELAY_STORE)")
	rf := m.remoteFlags(cmd)
	// viaAPI tells which way a command goes: a server given, by --server
	// or HOOKRELAY_SERVER, selects the admin API; without one the store
	// directly, where the first key is made.
	viaAPI := func(cmd *cobra.Command) (*apiClient, error) {
		via, err := m.viaServer(cmd, false)
		if err != nil || !via {
			return nil, err
		}
		return rf.client()
	}

	var name, scopes string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key; its secret is printed once, alone on the last line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := viaAPI(cmd)
			if err != nil {
				return err
			}
			list := strings.Split(scopes, ",")
			if _, err := admin.ParseScopes(list); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--scopes: %w", err)}
			}
			var k admin.KeyView
			if c != nil {
				raw, err := c.call(cmd.Context(), http.MethodPost, "/keys", nil, map[string]any{"name": name, "scopes": list}, &k)
				if err != nil {
					return err
				}
				if rf.json {
					return m.printJSON(raw)
				}
			} else {
				key, secret, err := admin.NewKey(name, list, time.Now().UTC())
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if err := m.withStore(cmd.Context(), storeURL, storeOpening{create: true, made: m.Stderr}, func(st backend) error { return st.CreateKey(cmd.Context(), key) }); err != nil {
					return err
				}
				k = admin.ViewKey(key)
				k.Secret = secret
				if rf.json {
					raw, err := json.Marshal(k)
					if err != nil {
						return err
					}
					return m.printJSON(raw)
				}
			}
			fmt.Fprintf(m.Stdout, "created key %s %s with scopes %s (prefix %s); its secret is shown only now:\n%s\n",
				safe(k.ID), safe(fmt.Sprintf("%q", k.Name)), safe(strings.Join(k.Scopes, ",")), safe(k.Prefix), safe(k.Secret))
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
			c, err := viaAPI(cmd)
			if err != nil {
				return err
			}
			var page struct {
				Data []admin.KeyView `json:"data"`
			}
			var raw []byte
			if c != nil {
				raw, err = c.call(cmd.Context(), http.MethodGet, "/keys", nil, nil, &page)
			} else {
				err = m.withStore(cmd.Context(), storeURL, storeOpening{}, func(st backend) error {
					keys, err := st.Keys(cmd.Context())
					for _, k := range keys {
						page.Data = append(page.Data, admin.ViewKey(k))
					}
					return err
				})
				if err == nil {
					raw, err = json.Marshal(page)
				}
			}
			if err != nil {
				return err
			}
			if rf.json {
				return m.printJSON(raw)
			}
			t := newTable(m.Stdout, "ID", "NAME", "PREFIX", "SCOPES", "CREATED", "LAST USED", "REVOKED")
			for _, k := range page.Data {
				t.row(k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","), when(k.CreatedAt), whenPtr(k.LastUsedAt), whenPtr(k.RevokedAt))
			}
			return t.flush()
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key; every instance sharing the store refuses it at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := viaAPI(cmd)
			if err != nil {
				return err
			}
			if c != nil {
				_, err = c.call(cmd.Context(), http.MethodDelete, "/keys/"+url.PathEscape(args[0]), nil, nil, nil)
			} else {
				err = m.withStore(cmd.Context(), storeURL, storeOpening{}, func(st backend) error { return st.RevokeKey(cmd.Context(), args[0], time.Now().UTC()) })
			}
			if err != nil {
				return fmt.Errorf("revoke %s: %w", safe(args[0]), err)
			}
			fmt.Fprintf(m.Stdout, "revoked %s\n", safe(args[0]))
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// withStore opens the store at storeURL as o says for f and closes it
// after.
func (m *Main) withStore(ctx context.Context, storeURL string, o storeOpening, f func(backend) error) error {
	st, _, err := openStore(ctx, storeURL, o)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}
