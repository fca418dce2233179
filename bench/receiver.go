package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is the downstream API hookrelay relays to, inside the benchmark
// process. /fast answers 200 at once and records each delivery; /hang never
// answers until the run releases it (or hookrelay gives up on the attempt).
type receiver struct {
	srv   *http.Server
	url   string
	hangs atomic.Int64

	mu      sync.Mutex
	rec     *recording
	release chan struct{}
}

// recording is what the receiver saw since the last reset.
type recording struct {
	keys       map[string]int           // Idempotency-Key → deliveries carrying it
	events     map[string]time.Duration // event id → send-to-arrival time of its first delivery
	total      int                      // deliveries
	dupKeys    int                      // deliveries whose Idempotency-Key was seen before
	dupEvents  int                      // deliveries of an event that had arrived before
	noKey      int                      // deliveries without an Idempotency-Key
	unreadable int                      // bodies without the benchmark's id and send time
	expected   map[string]bool          // the events the run waits for
	got        int                      // distinct expected events received
	done       chan struct{}            // closed when every expected event arrived
	firstAt    time.Time                // when the first of them arrived
	doneAt     time.Time                // when the last of them arrived
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String()}
	r.reset()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fast", r.fast)
	mux.HandleFunc("POST /hang", r.hang)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() {
	r.mu.Lock()
	r.releaseLocked()
	r.mu.Unlock()
	_ = r.srv.Close()
}

// reset starts a new recording.
func (r *receiver) reset() *recording {
	rec := &recording{
		keys:   map[string]int{},
		events: map[string]time.Duration{},
		done:   make(chan struct{}),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec = rec
	r.release = make(chan struct{})
	r.hangs.Store(0)
	return rec
}

// expect names the events rec waits for: its done channel closes once each
// has arrived, which may be at once.
func (r *receiver) expect(rec *recording, ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.expected = make(map[string]bool, len(ids))
	for _, id := range ids {
		rec.expected[id] = true
	}
	rec.got = 0
	for id := range rec.expected {
		if _, ok := rec.events[id]; ok {
			rec.got++
		}
	}
	if rec.got == len(rec.expected) {
		rec.doneAt = time.Now()
		close(rec.done)
	}
}

// releaseHanging makes every hanging request, and every later one until the
// next reset, answer 503 at once.
func (r *receiver) releaseHanging() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked()
}

func (r *receiver) releaseLocked() {
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

// deliveries is how many deliveries rec has seen.
func (r *receiver) deliveries(rec *recording) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(rec.total)
}

// snapshot returns a copy of rec's counters and latencies.
func (r *receiver) snapshot(rec *recording) recordingStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := recordingStats{
		Deliveries: rec.total,
		DupKeys:    rec.dupKeys,
		DupEvents:  rec.dupEvents,
		NoKey:      rec.noKey,
		Unreadable: rec.unreadable,
		Expected:   len(rec.expected),
		Got:        rec.got,
		received:   make(map[string]time.Duration, len(rec.events)),
	}
	for id, d := range rec.events {
		s.received[id] = d
	}
	return s
}

type recordingStats struct {
	Deliveries, DupKeys, DupEvents, NoKey, Unreadable int
	Expected, Got                                     int // Got of the Expected events arrived
	received                                          map[string]time.Duration
}

func (r *receiver) fast(w http.ResponseWriter, req *http.Request) {
	arrived := time.Now()
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	var ev struct {
		ID   string `json:"id"`
		Sent int64  `json:"sent"`
	}
	readable := json.Unmarshal(body, &ev) == nil && ev.ID != "" && ev.Sent > 0
	key := req.Header.Get("Idempotency-Key")

	r.mu.Lock()
	rec := r.rec
	rec.total++
	if key == "" {
		rec.noKey++
	} else {
		if rec.keys[key] > 0 {
			rec.dupKeys++
		}
		rec.keys[key]++
	}
	if !readable {
		rec.unreadable++
	} else if _, seen := rec.events[ev.ID]; seen {
		rec.dupEvents++
	} else {
		rec.events[ev.ID] = arrived.Sub(time.Unix(0, ev.Sent))
		if rec.expected[ev.ID] {
			if rec.got == 0 {
				rec.firstAt = arrived
			}
			if rec.got++; rec.got == len(rec.expected) {
				rec.doneAt = arrived
				close(rec.done)
			}
		}
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) hang(w http.ResponseWriter, req *http.Request) {
	r.hangs.Add(1)
	_, _ = io.Copy(io.Discard, req.Body)
	r.mu.Lock()
	release := r.release
	r.mu.Unlock()
	select {
	case <-req.Context().Done():
	case <-release:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}
