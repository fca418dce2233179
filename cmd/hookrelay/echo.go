package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// echoCommand runs a receiver that prints every request and answers 200: a
// stand-in downstream API for trying hookrelay out.
func (m *Main) echoCommand() *cobra.Command {
	var listen string
	var status int
	cmd := &cobra.Command{
		Use:   "echo",
		Short: "Run a receiver that prints every request it gets (for trying actions out)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status < 200 || status > 599 {
				return &exitError{code: 2, err: fmt.Errorf("--status %d: want a final HTTP status, 200 to 599", status)}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("--listen %s: %w", listen, err)}
			}
			fmt.Fprintf(m.Stdout, "echo receiver listening on http://%s (answering %d)\n", ln.Addr(), status)
			var mu sync.Mutex
			srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
				mu.Lock()
				printRequest(m.Stdout, r, body)
				mu.Unlock()
				w.WriteHeader(status)
			})}
			go func() {
				<-cmd.Context().Done()
				srv.Close()
			}()
			if err := srv.Serve(ln); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address to listen on")
	cmd.Flags().IntVar(&status, "status", http.StatusOK, "status code to answer with")
	return cmd
}

func printRequest(w io.Writer, r *http.Request, body []byte) {
	fmt.Fprintf(w, "\n%s %s %s\n", time.Now().Format(time.TimeOnly), safe(r.Method), safe(r.URL.RequestURI()))
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  %s: %s\n", safe(k), safe(strings.Join(r.Header[k], ", ")))
	}
	if len(body) > 0 {
		fmt.Fprintf(w, "  %s\n", safeText(string(body)))
	}
}
