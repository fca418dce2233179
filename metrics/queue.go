package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookrelay/hookrelay/store"
)

// DefaultCacheFor is how long one read of the queue serves scrapes.
const DefaultCacheFor = 2 * time.Second

// queueTimeout bounds one read of the queue at scrape time.
const queueTimeout = 5 * time.Second

// Queue is what the queue gauges read from the store.
type Queue interface {
	QueueStats(ctx context.Context, now time.Time) ([]store.QueueStats, error)
	ActionStates(ctx context.Context) ([]store.ActionState, error)
}

// breakerStates are the values of the state label of the breaker gauge.
var breakerStates = []store.BreakerState{store.BreakerClosed, store.BreakerOpen, store.BreakerHalfOpen}

var (
	dueDesc = prometheus.NewDesc(namespace+"_deliveries_due",
		"Deliveries due now and not held by a worker, by action: the backlog.", []string{"action"}, nil)
	retryingDesc = prometheus.NewDesc(namespace+"_deliveries_retrying",
		"Deliveries waiting for a later attempt, by action.", []string{"action"}, nil)
	leasedDesc = prometheus.NewDesc(namespace+"_deliveries_leased",
		"Deliveries held by a worker of any process, by action.", []string{"action"}, nil)
	oldestDesc = prometheus.NewDesc(namespace+"_deliveries_oldest_due_age_seconds",
		"How long the delivery due the longest has waited, by action; 0 when none is due.", []string{"action"}, nil)
	breakerDesc = prometheus.NewDesc(namespace+"_action_breaker_state",
		"The circuit breaker of each action: 1 for the state it is in (closed, open, half-open), 0 for the others.", []string{"action", "state"}, nil)
	pausedDesc = prometheus.NewDesc(namespace+"_action_paused",
		"Whether an operator paused the action (1) or not (0).", []string{"action"}, nil)
	lanesWaitingDesc = prometheus.NewDesc(namespace+"_deliveries_waiting_in_lane",
		"Deliveries of an ordered action (order_by) waiting behind the first of their lane, by action.", []string{"action"}, nil)
	lanesBlockedDesc = prometheus.NewDesc(namespace+"_lanes_blocked",
		"Ordering lanes whose first delivery is retrying while others wait behind it, by action.", []string{"action"}, nil)
	laneHeadDesc = prometheus.NewDesc(namespace+"_lane_oldest_head_age_seconds",
		"How long ago the oldest first delivery of an ordering lane was created, by action; 0 when no lane has one.", []string{"action"}, nil)
)

// queueCollector reads the queue and the action states at scrape time. One
// read serves every scrape for CacheFor: scrapes that come together wait
// for one read instead of each making their own.
type queueCollector struct {
	o        Options
	storeErr func(op string)

	mu     sync.Mutex
	readAt time.Time
	ok     bool
	stats  map[string]store.QueueStats
	states map[string]store.ActionState
	now    time.Time
}

func newQueueCollector(o Options, storeErr func(string)) *queueCollector {
	return &queueCollector{o: o, storeErr: storeErr}
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dueDesc, retryingDesc, leasedDesc, oldestDesc, breakerDesc, pausedDesc,
		lanesWaitingDesc, lanesBlockedDesc, laneHeadDesc} {
		ch <- d
	}
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// time.Now, not the injected clock, measures the cache: it protects the
	// store in real time.
	if q.readAt.IsZero() || time.Since(q.readAt) >= q.o.CacheFor {
		q.read()
		q.readAt = time.Now()
	}
	if !q.ok {
		return // the store failed: no value is better than a wrong one
	}
	for _, a := range q.o.Actions() {
		s := q.stats[a]
		oldest := 0.0
		if s.Due > 0 && !s.OldestDue.IsZero() {
			oldest = max(q.now.Sub(s.OldestDue).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(s.Due), a)
		ch <- prometheus.MustNewConstMetric(retryingDesc, prometheus.GaugeValue, float64(s.Scheduled), a)
		ch <- prometheus.MustNewConstMetric(leasedDesc, prometheus.GaugeValue, float64(s.InFlight), a)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest, a)
		head := 0.0
		if !s.OldestLaneHead.IsZero() {
			head = max(q.now.Sub(s.OldestLaneHead).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(lanesWaitingDesc, prometheus.GaugeValue, float64(s.Waiting), a)
		ch <- prometheus.MustNewConstMetric(lanesBlockedDesc, prometheus.GaugeValue, float64(s.BlockedLanes), a)
		ch <- prometheus.MustNewConstMetric(laneHeadDesc, prometheus.GaugeValue, head, a)
		st := q.states[a]
		state := st.Breaker
		if state == "" {
			state = store.BreakerClosed
		}
		for _, b := range breakerStates {
			v := 0.0
			if b == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, a, string(b))
		}
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, paused, a)
	}
}

// read fetches the queue and the action states; q.mu is held.
func (q *queueCollector) read() {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	q.ok = false
	now := q.o.Now()
	stats, err := q.o.Queue.QueueStats(ctx, now)
	if err != nil {
		q.storeErr("queue_stats")
		return
	}
	states, err := q.o.Queue.ActionStates(ctx)
	if err != nil {
		q.storeErr("action_states")
		return
	}
	q.stats = make(map[string]store.QueueStats, len(stats))
	for _, s := range stats {
		q.stats[s.Action] = s
	}
	q.states = make(map[string]store.ActionState, len(states))
	for _, s := range states {
		q.states[s.Action] = s
	}
	q.now, q.ok = now, true
}
