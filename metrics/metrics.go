package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookrelay/hookrelay/store"
)

const namespace = "hookrelay"

// Options configure Metrics; the zero value gives the counters alone.
type Options struct {
	// Queue, when set, is read at scrape time for each action's queue and
	// breaker gauges.
	Queue Queue
	// Actions returns the action names of the config in force: the queue
	// gauges are given for these only.
	Actions func() []string
	// CacheFor is how long one read of the queue serves scrapes; default
	// DefaultCacheFor.
	CacheFor time.Duration
	// Now is the clock for the age of the oldest due delivery; time.Now
	// when nil.
	Now func() time.Time
	// Version is exposed as hookrelay_build_info{version}.
	Version string
	// Writes, when set, is read at scrape time for how long the store's
	// writes waited on the disk (hookrelay_store_write_duration_seconds).
	Writes store.WriteTimer
	// IdentityLosses, when set, counts the times this process found that
	// the store lost its data (hookrelay_store_identity_lost_total).
	IdentityLosses func() int64
}

// Metrics is the process's registry and every metric in it. Its methods
// are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	events      *prometheus.CounterVec
	ingest      *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	requestTime *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	attemptTime *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	recording   *prometheus.GaugeVec
	handedOff   *prometheus.CounterVec
	offered     *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	storeCalls  *prometheus.HistogramVec
	reloads     *prometheus.CounterVec
	lastReload  prometheus.Gauge
	lastSuccess prometheus.Gauge
}

// New returns Metrics with every collector registered.
func New(o Options) *Metrics {
	if o.CacheFor <= 0 {
		o.CacheFor = DefaultCacheFor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Actions == nil {
		o.Actions = func() []string { return nil }
	}
	// Latencies of a webhook answer and of an attempt: from a millisecond
	// to the longest action timeouts.
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_received_total",
			Help: "Requests to a configured hook, by hook and outcome: accepted, ignored (no rule matched), duplicate, or the refusal.",
		}, []string{"hook", "outcome"}),
		ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ingest_duration_seconds",
			Help:    "Time from a request to a configured hook arriving to its answer, the store step included.",
			Buckets: buckets,
		}, []string{"hook"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		requestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: buckets,
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "delivery_attempts_total",
			Help: "Delivery attempts made by this process, by action and result: success, dead, or why an attempt to be retried failed.",
		}, []string{"action", "result"}),
		attemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_attempt_duration_seconds",
			Help:    "Duration of delivery attempts, by action.",
			Buckets: buckets,
		}, []string{"action"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "delivery_attempts_in_flight",
			Help: "Delivery attempts running in this process, by action.",
		}, []string{"action"}),
		recording: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "delivery_outcomes_recording",
			Help: "Delivery attempts of this process that have ended and whose outcomes wait to be written to the store, by action.",
		}, []string{"action"}),
		handedOff: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "deliveries_handed_off_total",
			Help: "Deliveries this process's relay took in the accept that stored them, instead of leasing them from the queue, by action.",
		}, []string{"action"}),
		offered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "deliveries_offered_total",
			Help: "Deliveries this process's relay offered to take in the accept that stored them, by action; those the store did not hand it are offered less handed off.",
		}, []string{"action"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Failed store operations, by operation.",
		}, []string{"op"}),
		storeCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_call_duration_seconds",
			Help:    "Time the relay's calls to the store took, by operation: lease (due deliveries taken), finish (outcomes recorded).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_reloads_total",
			Help: "Config reloads, by result: success, or failure (the previous config kept serving).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_successful",
			Help: "Whether the last config reload succeeded (1) or was refused (0).",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the config in force was loaded, in seconds since the epoch.",
		}),
	}
	m.lastReload.Set(1)
	m.lastSuccess.SetToCurrentTime()
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, op := range []string{"lease", "finish"} {
		m.storeCalls.WithLabelValues(op)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the version of hookrelay running.",
		ConstLabels: prometheus.Labels{"version": o.Version},
	})
	build.Set(1)
	m.reg.MustRegister(m.events, m.ingest, m.requests, m.requestTime, m.attempts, m.attemptTime,
		m.inFlight, m.recording, m.handedOff, m.offered, m.storeErrors, m.storeCalls, m.reloads, m.lastReload, m.lastSuccess, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.Queue != nil {
		m.reg.MustRegister(newQueueCollector(o, m.StoreError))
	}
	if o.Writes != nil {
		m.reg.MustRegister(writesCollector{o.Writes})
	}
	if o.IdentityLosses != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_identity_lost_total",
			Help: "Times this process found the store's identity gone: the store lost its data, and events acknowledged before may be lost with it.",
		}, func() float64 { return float64(o.IdentityLosses()) }))
	}
	return m
}

// Handler serves the exposition of every metric.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry every metric is in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Configure makes every counter of the config's hooks and actions exist,
// at zero, so that a rate over them is defined before the first event.
// Called with each config taken into force.
func (m *Metrics) Configure(hooks, actions []string, outcomes, results []string) {
	for _, h := range hooks {
		for _, o := range outcomes {
			m.events.WithLabelValues(h, o)
		}
	}
	for _, a := range actions {
		for _, r := range results {
			m.attempts.WithLabelValues(a, r)
		}
		m.inFlight.WithLabelValues(a)
		m.recording.WithLabelValues(a)
		m.handedOff.WithLabelValues(a)
		m.offered.WithLabelValues(a)
	}
}

// Event counts one request to a configured hook with its outcome.
func (m *Metrics) Event(hook, outcome string, d time.Duration) {
	m.events.WithLabelValues(hook, outcome).Inc()
	m.ingest.WithLabelValues(hook).Observe(d.Seconds())
}

// Request counts one HTTP request. route is the pattern that matched it,
// "" for none.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.requestTime.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel keeps the method label to the methods HTTP defines.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// AttemptStarted counts an attempt in flight.
func (m *Metrics) AttemptStarted(action string) { m.inFlight.WithLabelValues(action).Inc() }

// AttemptFinished ends an attempt AttemptStarted counted and records its
// result and duration.
func (m *Metrics) AttemptFinished(action, result string, d time.Duration) {
	m.inFlight.WithLabelValues(action).Dec()
	m.attempts.WithLabelValues(action, result).Inc()
	m.attemptTime.WithLabelValues(action).Observe(d.Seconds())
}

// OutcomeRecording counts an ended attempt whose outcome is being
// written to the store (on), or no longer (off).
func (m *Metrics) OutcomeRecording(action string, on bool) {
	if on {
		m.recording.WithLabelValues(action).Inc()
	} else {
		m.recording.WithLabelValues(action).Dec()
	}
}

// HandedOff counts a delivery the relay took at its accept.
func (m *Metrics) HandedOff(action string) { m.handedOff.WithLabelValues(action).Inc() }

// Offered counts n deliveries the relay offered to take at their accept.
func (m *Metrics) Offered(action string, n int) { m.offered.WithLabelValues(action).Add(float64(n)) }

// StoreError counts a failed store operation.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// StoreCall records how long one of the relay's calls to the store took.
func (m *Metrics) StoreCall(op string, d time.Duration) {
	m.storeCalls.WithLabelValues(op).Observe(d.Seconds())
}

// Reload records a config reload and whether it succeeded.
func (m *Metrics) Reload(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.lastReload.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastReload.Set(1)
	m.lastSuccess.SetToCurrentTime()
}
