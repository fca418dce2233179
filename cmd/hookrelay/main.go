// Command hookrelay is a self-hosted inbound webhook gateway and relay.
//
// It is the only place that reads flags and the environment and wires the
// packages together; Main lets tests run the real program in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/hookrelay/hookrelay/redact"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv}
	os.Exit(m.Run(ctx, os.Args[1:]))
}

// Main is the program with its outside world injected.
type Main struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Run runs the command line args until it finishes or ctx is done, and
// returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	// What the commands print may hold values from webhook senders: nothing
	// reaches the terminal that could steer it (see term.go).
	safeOut := *m
	safeOut.Stdout = &terminalWriter{w: m.Stdout}
	return safeOut.run(ctx, args)
}

func (m *Main) run(ctx context.Context, args []string) int {
	// A command says what failed itself; what the Redis client would print
	// on its own (each failed dial) only serve's log takes, at debug.
	redis.SetLogger(redisClientLog{})
	root := m.rootCommand()
	root.SetArgs(args)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		// An error can quote a config line or an answer: credential
		// patterns in it are masked like everything else shown.
		var ee *exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(m.Stderr, safeText(redact.Text(ee.err.Error())))
			return ee.code
		}
		fmt.Fprintln(m.Stderr, "error:", safeText(redact.Text(err.Error())))
		return 1
	}
	return 0
}

func (m *Main) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "hookrelay",
		Short:         "Self-hosted inbound webhook gateway and relay",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(m.serveCommand(), m.validateCommand(), m.testCommand(), m.signCommand(),
		m.keysCommand(), m.eventsCommand(), m.deliveriesCommand(), m.actionsCommand(), m.storeCommand(), m.whatifCommand(), m.echoCommand(), m.versionCommand())
	return root
}

func (m *Main) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(m.Stdout, "hookrelay %s\n", version)
		},
	}
}

// env returns the value of an environment variable or def.
func (m *Main) env(name, def string) string {
	if v, ok := m.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envValues reads typed environment variables for one command's flag
// defaults. Flags are declared before the command runs, so a value that
// does not parse is kept and reported by err when the command starts:
// it stops the command rather than being silently replaced by the default.
type envValues struct {
	m    *Main
	errs []error
}

func (m *Main) envValues() *envValues { return &envValues{m: m} }

func (e *envValues) int(name string, def int) int {
	s := e.m.env(name, "")
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a whole number such as %d", name, s, def))
		return def
	}
	return v
}

func (e *envValues) duration(name string, def time.Duration) time.Duration {
	s := e.m.env(name, "")
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a duration with its unit such as %v", name, s, def))
		return def
	}
	return v
}

// err is every variable that did not parse, nil when all did.
func (e *envValues) err() error { return errors.Join(e.errs...) }
