package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// payloads makes the benchmark's webhooks: JSON of exactly size bytes with
// a unique id (the hook's idempotency key), the send time in Unix
// nanoseconds (the receiver's latency clock) and the route the rules
// follow, signed with hex HMAC-SHA256 in X-Signature. The rest is what a
// payment provider sends, with ids, amounts, names and a note that differ
// from one webhook to the next, so that the store compresses it as it
// would real webhooks (about 40 %), not as a run of one letter.
type payloads struct {
	secret []byte
	size   int
}

func (p payloads) body(id string, sent time.Time, route string) []byte {
	b := make([]byte, 0, p.size)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","sent":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `,"route":"`...)
	b = append(b, route...)
	b = append(b, `","type":"payment_intent.succeeded"`...)
	r := newWords(id)
	if obj := r.payment(sent); len(b)+len(`,"data":`)+len(obj)+len(`,"note":""}`) <= p.size {
		b = append(b, `,"data":`...)
		b = append(b, obj...)
	}
	b = append(b, `,"note":"`...)
	for len(b) < p.size-len(`"}`) {
		w := r.word()
		if room := p.size - len(`"}`) - len(b); len(w)+1 > room {
			w = w[:room-1]
		}
		b = append(b, w...)
		b = append(b, ' ')
	}
	return append(b, `"}`...)
}

// words draws the varying parts of one webhook from its id: the same id
// gives the same webhook.
type words struct{ x uint64 }

func newWords(id string) *words {
	h := fnv.New64a()
	h.Write([]byte(id))
	return &words{x: h.Sum64() | 1}
}

func (w *words) next() uint64 {
	w.x ^= w.x << 13
	w.x ^= w.x >> 7
	w.x ^= w.x << 17
	return w.x
}

var vocabulary = strings.Fields(`wine club order shipped member renewal gold silver
	bottle case riesling pinot noir merlot tasting box delivery address changed
	invoice paid refund partial subscription paused resumed gift note customer
	requested weekend courier Berlin Hamburg Munich cellar vintage reserve`)

func (w *words) word() string { return vocabulary[w.next()%uint64(len(vocabulary))] }

// payment is the data object of a payment provider's event.
func (w *words) payment(sent time.Time) []byte {
	id := strconv.FormatUint(w.next(), 36)
	cus := strconv.FormatUint(w.next()%1e9, 36)
	amount := strconv.FormatUint(1000+w.next()%90000, 10)
	order := strconv.FormatUint(w.next()%1e6, 10)
	created := strconv.FormatInt(sent.Unix(), 10)
	return []byte(`{"object":{"id":"pi_` + id + `","object":"payment_intent","amount":` + amount +
		`,"amount_received":` + amount + `,"capture_method":"automatic","client_secret":"pi_` + id + `_secret_` + cus +
		`","created":` + created + `,"currency":"eur","customer":"cus_` + cus + `","description":"` + w.word() + " " + w.word() +
		` order ` + order + `","latest_charge":"ch_` + id + `","livemode":false,"metadata":{"order_id":"ORD-` + order +
		`","club":"` + w.word() + `"},"payment_method":"pm_` + id + `","receipt_email":"member` + cus + `@example.com",` +
		`"shipping":{"address":{"city":"` + w.word() + `","country":"DE","line1":"` + w.word() + ` ` + strconv.FormatUint(1+w.next()%200, 10) +
		`","postal_code":"` + strconv.FormatUint(10000+w.next()%89999, 10) + `"},"name":"Member ` + cus + `"},"status":"succeeded"}}`)
}

func (p payloads) header(body []byte) http.Header {
	m := hmac.New(sha256.New, p.secret)
	m.Write(body)
	return http.Header{
		"Content-Type": {"application/json"},
		"X-Signature":  {hex.EncodeToString(m.Sum(nil))},
	}
}

func eventID(tag string, n int64) string { return tag + "-" + strconv.FormatInt(n, 10) }

// loopResult counts the answers of a closed-loop run.
type loopResult struct {
	OK       int64         // answered with the status wanted
	Codes    map[int]int64 // any other status
	Errors   int64         // no answer (connection refused, timeout…)
	Elapsed  time.Duration
	FirstErr string
}

func (r loopResult) rate() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// closedLoop keeps conns requests in flight, each sent as soon as the one
// before it on its connection was answered, until the deadline passes or
// limit requests (0: no limit) have been sent. Each request carries the next
// event number; accepted is called with those answered with want.
func closedLoop(ctx context.Context, c *http.Client, target string, conns int, deadline time.Time, limit int64,
	p payloads, tag string, want int, accepted func(n int64)) loopResult {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		res     = loopResult{Codes: map[int]int64{}}
		wg      sync.WaitGroup
		start   = time.Now()
		ctxDone = ctx.Done()
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, errs int64
			codes := map[int]int64{}
			firstErr := ""
			defer func() {
				mu.Lock()
				res.OK += ok
				res.Errors += errs
				for k, v := range codes {
					res.Codes[k] += v
				}
				if res.FirstErr == "" {
					res.FirstErr = firstErr
				}
				mu.Unlock()
			}()
			for time.Now().Before(deadline) {
				select {
				case <-ctxDone:
					return
				default:
				}
				n := next.Add(1)
				if limit > 0 && n > limit {
					return
				}
				body := p.body(eventID(tag, n), time.Now(), "fast")
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
				if err != nil {
					panic(err) // the URL is ours
				}
				req.Header = p.header(body)
				resp, err := c.Do(req)
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					// Keep a dead server from turning this into a busy loop.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					codes[resp.StatusCode]++
					continue
				}
				ok++
				if accepted != nil {
					accepted(n)
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // only 127.0.0.1, never through a proxy
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// rateResult is what a constant-rate run sent and how it was answered.
type rateResult struct {
	Sent     int64
	Accepted int64         // 202
	Codes    map[int]int64 // any other status
	Errors   int64
	FirstErr string
	Elapsed  time.Duration
	// answerP99 is the 99th percentile of the time to the 202.
	answerP99 time.Duration
	fast      []int64 // accepted events routed to the receiver
	slow      int64   // accepted events routed to the hanging action
}

// constantRate sends rate events per second for d with vegeta, whatever the
// server's answer time (an open loop, unlike closedLoop). Every event
// numbered n for which isSlow(n) holds is routed to the hanging action.
func constantRate(ctx context.Context, target string, rate int, d time.Duration, p payloads, tag string, isSlow func(n int64) bool) rateResult {
	var seq atomic.Int64
	targeter := func(t *vegeta.Target) error {
		n := seq.Add(1)
		route := "fast"
		if isSlow(n) {
			route = "slow"
		}
		body := p.body(eventID(tag, n), time.Now(), route)
		t.Method = http.MethodPost
		t.URL = target + "?n=" + strconv.FormatInt(n, 10)
		t.Body = body
		t.Header = p.header(body)
		return nil
	}
	atk := vegeta.NewAttacker(
		vegeta.Timeout(30*time.Second),
		vegeta.MaxWorkers(1024),
		vegeta.KeepAlive(true),
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.MaxBody(1024),
		vegeta.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil }),
	)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	res := rateResult{Codes: map[int]int64{}}
	var answers []time.Duration
	start := time.Now()
	for r := range atk.Attack(targeter, vegeta.ConstantPacer{Freq: rate, Per: time.Second}, d, tag) {
		res.Sent++
		n := seqOf(r.URL)
		switch {
		case r.Code == 0:
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = r.Error
			}
		case r.Code != http.StatusAccepted:
			res.Codes[int(r.Code)]++
		case n <= 0:
			res.Codes[-1]++ // cannot happen: every URL carries its number
		case isSlow(n):
			res.Accepted++
			res.slow++
			answers = append(answers, r.Latency)
		default:
			res.Accepted++
			res.fast = append(res.fast, n)
			answers = append(answers, r.Latency)
		}
	}
	res.Elapsed = time.Since(start)
	slices.Sort(answers)
	res.answerP99 = percentile(answers, 0.99)
	sort.Slice(res.fast, func(i, j int) bool { return res.fast[i] < res.fast[j] })
	return res
}

func seqOf(u string) int64 {
	_, q, ok := strings.Cut(u, "?n=")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(q, 10, 64)
	return n
}

// slowEvery routes share of the events to the hanging action, spread evenly.
func slowEvery(share float64) func(n int64) bool {
	return func(n int64) bool {
		return int64(float64(n)*share) > int64(float64(n-1)*share)
	}
}

func codesString(m map[int]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d×%d", m[k], k)
	}
	return strings.Join(parts, ", ")
}
