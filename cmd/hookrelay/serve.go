package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/dashboard"
	"github.com/hookrelay/hookrelay/gateway"
	"github.com/hookrelay/hookrelay/gateway/admin"
	"github.com/hookrelay/hookrelay/metrics"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/retention"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/redisstore"
)

// minLease is the shortest --lease: attempts renew their leases every
// third of it, and a renewal must reach the store well before the end.
const minLease = time.Second

// minWatch is the shortest --watch other than 0 (no checks): each check
// reads the config and rule files' state.
const minWatch = 100 * time.Millisecond

type serveFlags struct {
	config    string
	listen    string
	store     string
	workers   int
	lease     time.Duration
	grace     time.Duration
	logFormat string
	logLevel  string
	watch     time.Duration

	// adminListen moves the operators' endpoints to a listener of their own.
	adminListen string
	// acceptReset accepts, at start, that the store lost its data.
	acceptReset bool
	// keyFile names the file holding the keys that seal stored events.
	keyFile string
	// expect is the store identity the store must hold at start.
	expect string
}

// check refuses values of the flags (or of their variables) that serve
// cannot run with, naming every one at once.
func (f serveFlags) check() error {
	var errs []error
	if f.workers < 0 {
		errs = append(errs, fmt.Errorf("--workers or HOOKRELAY_WORKERS %d: want 0 (no relay in this process) or more", f.workers))
	}
	if f.lease < minLease {
		errs = append(errs, fmt.Errorf("--lease or HOOKRELAY_LEASE %v: want at least %v, so that leases can be renewed in time", f.lease, minLease))
	}
	if _, port, _ := net.SplitHostPort(f.listen); f.adminListen == f.listen && port != "0" {
		errs = append(errs, fmt.Errorf("--admin-listen or HOOKRELAY_ADMIN_LISTEN %s: the address of --listen; give another, or none to serve the operators' endpoints on --listen", f.adminListen))
	}
	if f.grace < 0 {
		errs = append(errs, fmt.Errorf("--grace or HOOKRELAY_GRACE %v: want 0 (stop at once) or more", f.grace))
	}
	if f.watch < 0 || f.watch > 0 && f.watch < minWatch {
		errs = append(errs, fmt.Errorf("--watch or HOOKRELAY_WATCH %v: want 0 (no checks: reload on SIGHUP or POST /api/v1/reload) or at least %v", f.watch, minWatch))
	}
	return errors.Join(errs...)
}

func (m *Main) serveCommand() *cobra.Command {
	var f serveFlags
	env := m.envValues()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Receive webhooks and perform their actions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := env.err(); err != nil {
				return &exitError{code: 2, err: err}
			}
			return m.serve(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", m.env("HOOKRELAY_CONFIG", "hookrelay.yaml"), "config file (env HOOKRELAY_CONFIG)")
	fl.StringVar(&f.listen, "listen", m.env("HOOKRELAY_LISTEN", ":8080"), "address to listen on (env HOOKRELAY_LISTEN)")
	fl.StringVar(&f.adminListen, "admin-listen", m.env("HOOKRELAY_ADMIN_LISTEN", ""), "address of a second listener for operators, serving /metrics, /healthz, /readyz, the admin API and the dashboard; when set, --listen serves only the catch URLs and health checks (env HOOKRELAY_ADMIN_LISTEN)")
	fl.StringVar(&f.store, "store", m.env("HOOKRELAY_STORE", ""), "store URL: sqlite:///path/file.db (?page_size=N for a new file), redis://host:port/db or redis+cluster://host:port?addr=host2:port2; default the embedded file "+defaultStorePath+" (env HOOKRELAY_STORE)")
	fl.IntVar(&f.workers, "workers", env.int("HOOKRELAY_WORKERS", 1000), "most delivery attempts in flight in this process across all actions (each action's concurrency: applies within it); 0 runs no relay in this process (env HOOKRELAY_WORKERS)")
	fl.DurationVar(&f.lease, "lease", env.duration("HOOKRELAY_LEASE", 30*time.Second), "how long a delivery stays held when its worker stops renewing it (a crashed process's work is taken over after this) (env HOOKRELAY_LEASE)")
	fl.DurationVar(&f.grace, "grace", env.duration("HOOKRELAY_GRACE", 10*time.Second), "how long requests and attempts in flight may finish at shutdown (env HOOKRELAY_GRACE)")
	fl.DurationVar(&f.watch, "watch", env.duration("HOOKRELAY_WATCH", 2*time.Second), "how often config and rule files are checked for changes, which reload them; 0: never (env HOOKRELAY_WATCH)")
	fl.StringVar(&f.logFormat, "log-format", m.env("HOOKRELAY_LOG_FORMAT", "text"), "text or json (env HOOKRELAY_LOG_FORMAT)")
	fl.BoolVar(&f.acceptReset, "accept-store-reset", false, "accept at start that the store lost its data (as \"hookrelay store reset-ack\" does), so that /readyz can answer 200 again")
	fl.StringVar(&f.expect, "expect-store", m.env("HOOKRELAY_EXPECT_STORE", ""), "the store identity the store must hold at start (hookrelay store identity prints it): a store that holds none lost its data while no process ran, and stays not ready until \"hookrelay store reset-ack\"; one that holds another is refused (env HOOKRELAY_EXPECT_STORE)")
	fl.StringVar(&f.keyFile, "encryption-key-file", m.env(envEncryptionKeyFile, ""), "file holding the keys that seal stored event payloads, as "+envEncryptionKey+" holds them (env "+envEncryptionKeyFile+")")
	fl.StringVar(&f.logLevel, "log-level", m.env("HOOKRELAY_LOG_LEVEL", "info"), "debug, info, warn or error (env HOOKRELAY_LOG_LEVEL)")
	return cmd
}

func (m *Main) serve(ctx context.Context, f serveFlags) error {
	log, red, err := m.logger(f.logFormat, f.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	redis.SetLogger(redisClientLog{log})
	defer redis.SetLogger(redisClientLog{})
	m.tuneGC()
	if err := f.check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg, err := config.Load(f.config, m.LookupEnv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	red.SetRedactor(cfg.Redactor())
	logWarnings(log, cfg)
	keys, source, err := m.encryptionKeyRing(f.keyFile)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	st, where, err := openStore(ctx, f.store, storeOpening{keys: keys, log: log, create: true})
	if err != nil {
		return &exitError{code: 1, err: plainDiskFull(err)}
	}
	defer st.Close()
	log.Info("store opened", "store", where)
	warn, err := checkSealed(ctx, st, keys, source)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if warn != "" {
		log.Warn(warn)
	}
	if keys == nil {
		log.Warn(unsealedNotice)
	} else {
		log.Info("event payloads are sealed at rest", "sealing", keys.Current(), "opening", strings.Join(keys.IDs(), ","))
	}
	rd, err := readiness(ctx, st, log, f.acceptReset, f.expect)
	if err != nil {
		return &exitError{code: 1, err: plainDiskFull(err)}
	}

	// SIGHUP reloads; it is caught before anything listens, as its default
	// action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--listen %s: %w", f.listen, err)}
	}
	var adminLn net.Listener
	if f.adminListen != "" {
		if adminLn, err = net.Listen("tcp", f.adminListen); err != nil {
			ln.Close()
			return &exitError{code: 1, err: fmt.Errorf("--admin-listen %s: %w", f.adminListen, err)}
		}
	}
	var gw *gateway.Gateway
	mo := metrics.Options{
		Queue:   st,
		Actions: func() []string { return actionNames(gw.Config()) },
		Version: version,
		// Counted by the readiness watcher.
		IdentityLosses: rd.Losses,
	}
	if wt, ok := st.(store.WriteTimer); ok {
		mo.Writes = wt
	}
	mx := metrics.New(mo)
	mx.Configure(cfg.HookNames(), actionNames(cfg), gateway.Outcomes, relay.Results)
	gwo := gateway.Options{Logger: log, Metrics: mx, Ready: rd.Ready}
	if rs, ok := st.(*redisstore.Store); ok {
		// Hooks' rate_limit: holds across every process on the Redis
		// store; on the embedded store, per process.
		gwo.Limiter = rs.Limiter()
		gwo.Ready = func(ctx context.Context) error {
			if err := rd.Ready(ctx); err != nil {
				return err
			}
			// Under durability: wait a master without a replica online
			// answers every accept of its partitions 503 (a new cluster's
			// replicas take a moment to sync; a failed-over master has
			// none until one joins it).
			if n := gw.Config().WaitReplicas; n > 0 {
				if err := rs.ReplicasOnline(ctx, n); err != nil {
					return fmt.Errorf("durability: wait, and a master of the store has no replica online to hold events: they are answered 503 meanwhile: %w", err)
				}
			}
			return nil
		}
	}
	// One clock for the relay and its client: a bearer token's exp is
	// judged by the time the relay schedules by.
	now := time.Now
	client := actions.NewClient(actions.ClientOptions{
		UserAgent: "hookrelay/" + version,
		Now:       now,
		// The allowlist is read at each connection from the config in force,
		// so a reload changes it too.
		Transport: actions.GuardedTransport(func() []netip.Prefix { return gw.Config().AllowNetworks }),
	})
	var rel *relay.Relay
	if f.workers > 0 {
		o := relay.Options{MaxInFlight: f.workers, Lease: f.lease, Grace: f.grace, Logger: log, Metrics: mx, Now: now,
			Limits: func() rules.Limits { return gw.Config().Evaluation }}
		if rs, ok := st.(*redisstore.Store); ok {
			// Rates hold across every process that shares the Redis store.
			o.Limiter = rs.Limiter()
			// Its accepts may hand off to this relay from now on.
			rs.TakeHandOffs()
		}
		h, handsOff := st.(interface{ HandsOff() bool })
		if handsOff {
			// The store leases an event's deliveries to this process's
			// relay in the accept itself when both can.
			o.HandsOff = h.HandsOff
		}
		rel = relay.New(st, client, func() map[string]*actions.Action { return gw.Config().Actions }, o)
		if handsOff {
			gwo.HandOff = rel
		}
	}
	gw = gateway.New(st, cfg, gwo)
	rl := newReloader(cfg, func() (*config.Config, error) { return config.Load(f.config, m.LookupEnv) }, func(c *config.Config) {
		// The log masks the new config's secrets from now on; those of
		// every config before stay masked too, as work in flight or a
		// sender that still uses one may quote them.
		red.Add(c.Redactor())
		logWarnings(log, c)
		gw.SetConfig(c)
		client.ClearTokens()
		mx.Configure(c.HookNames(), actionNames(c), gateway.Outcomes, relay.Results)
	}, log)
	rl.observe = mx.Reload
	ingress := gw.Handler()
	api := admin.New(admin.Options{
		Store:      st,
		Config:     gw.Config,
		Ingress:    ingress,
		Reload:     func(context.Context) (*config.Config, error) { return rl.Reload("admin API") },
		ClearCache: client.ClearTokens,
		LookupEnv:  m.LookupEnv,
		Logger:     log,
		Metrics:    mx,
	})
	metricsRouter := gateway.NewRouter(log, gateway.Instrument(mx))
	metricsRouter.GET("/metrics", gin.WrapH(mx.Handler()))

	// ops is what operators use: on the --admin-listen listener when one
	// is named, else beside the catch URLs on the one listener.
	ops := http.NewServeMux()
	ops.Handle("/metrics", metricsRouter)
	ops.Handle("/healthz", ingress)
	ops.Handle("/readyz", ingress)
	apiHandler := api.Handler()
	ops.Handle("/api/", apiHandler)
	// The dashboard moves to --admin-listen with the rest, and the public
	// listener answers 404 for it.
	ops.Handle("/ui/", dashboard.New(dashboard.Options{API: apiHandler, Logger: log}).Handler())

	public := http.NewServeMux()
	public.Handle("/", ingress)
	srv := gateway.NewServer(public, gateway.ServerOptions{Logger: log})
	var adminSrv *gateway.Server
	if adminLn != nil {
		adminSrv = gateway.NewServer(ops, gateway.ServerOptions{Logger: log})
	} else {
		ops.Handle("/", ingress)
		srv.Handler = ops
	}
	logCatchURLs(log, cfg, ln.Addr())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		log.Info("listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: intake stopped, finishing work in flight", "grace", f.grace)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), f.grace)
		defer cancel()
		if adminSrv == nil {
			return srv.Shutdown(sctx)
		}
		return errors.Join(srv.Shutdown(sctx), adminSrv.Shutdown(sctx))
	})
	if adminSrv != nil {
		g.Go(func() error {
			log.Info("admin listening", "addr", adminLn.Addr().String())
			if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if rel != nil {
		g.Go(func() error { return rel.Run(gctx) })
	}
	// Every process prunes; the store's pruning lease lets one work at a
	// time.
	pr := retention.New(st, retention.Options{Logger: log, Windows: func() retention.Windows {
		w := gw.Config().Retention
		return retention.Windows{Completed: w.Completed, Failed: w.Failed}
	}})
	g.Go(func() error { return pr.Run(gctx) })
	g.Go(func() error { return rl.Run(gctx, f.watch, hup) })
	g.Go(func() error { return rd.Run(gctx) })
	err = g.Wait()
	// Refusal lines held back are summed up before the process ends.
	gw.FlushLog()
	if err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{code: 1, err: err}
	}
	log.Info("stopped")
	return nil
}

// The gateway and the relay report to the metrics through interfaces of their own.
var (
	_ gateway.Metrics = (*metrics.Metrics)(nil)
	_ relay.Metrics   = (*metrics.Metrics)(nil)
)

// actionNames are the names of cfg's actions: the only action label values.
func actionNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Actions))
	for n := range cfg.Actions {
		names = append(names, n)
	}
	return names
}

func logCatchURLs(log *slog.Logger, cfg *config.Config, addr net.Addr) {
	base := cfg.PublicURL
	if base == "" {
		host, port, _ := net.SplitHostPort(addr.String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	for _, name := range cfg.HookNames() {
		h := cfg.Hooks[name]
		u := base + "/hooks/catch/" + name
		if h.Token != "" {
			// The token is the hook's secret: show only enough to recognise it.
			u += "/" + redact.TokenPrefix(h.Token)
		}
		log.Info("hook ready", "hook", name, "url", u, "verify", h.Verifier.Scheme(), "rules", len(h.Rules.Rules))
	}
}

// logger returns the process's logger. Every line passes through the
// returned redacting handler, which masks credential patterns and catch-URL
// tokens at once and, once it is given the config's Redactor, every secret
// the config knows.
func (m *Main) logger(format, level string) (*slog.Logger, *redact.Handler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level or HOOKRELAY_LOG_LEVEL %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(m.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(m.Stderr, opts)
	default:
		return nil, nil, fmt.Errorf("--log-format or HOOKRELAY_LOG_FORMAT %q: use text or json", format)
	}
	red := redact.NewHandler(h)
	// A line logged while serving a request carries the request's id.
	return slog.New(gateway.LogHandler(red)), red, nil
}

// redisClientLog carries what the Redis client prints by itself (a dial
// that failed, a connection it dropped) into the process's log, at debug:
// the store's callers log each error they meet, with what they were doing,
// and a Redis that is down would otherwise add a line per dial. The client
// keeps one logger per process; without a log it is silent.
type redisClientLog struct{ log *slog.Logger }

func (l redisClientLog) Printf(ctx context.Context, format string, v ...any) {
	if l.log != nil {
		l.log.DebugContext(ctx, "redis client", "detail", strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	}
}

func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
}

// Garbage collection defaults for serve, each used only when its
// environment variable is unset. Intake and delivery allocate a little per
// request and keep little alive, so with Go's default the collector runs
// very often; a higher percentage runs it less, and the soft memory limit
// makes it collect sooner again if the heap ever gets near it.
const (
	serveGCPercent   = 400
	serveMemoryLimit = 100 << 20
)

func (m *Main) tuneGC() {
	if _, ok := m.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(serveGCPercent)
	}
	if _, ok := m.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
}
