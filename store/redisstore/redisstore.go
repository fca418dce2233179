package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
	"github.com/hookrelay/hookrelay/store/seal"
)

// DefaultPrefix heads every key when no prefix is named.
const DefaultPrefix = "hr"

// keySlack is how long Redis keeps an idempotency key after its window
// ends, so that gateways whose clocks run a little behind still see it.
const keySlack = time.Minute

// Store is the Redis backend of store.Store.
type Store struct {
	c      redis.UniversalClient
	log    *slog.Logger // what the store has to say; slog.Default() unless WithLogger
	prefix string
	parts  []keys // per partition (partition.go)
	k      keys   // partition 0's, which holds what the whole store shares
	owned  bool   // Close closes c

	calls      chan *acceptCall // to the committers (commit.go)
	quit       chan struct{}    // closed by Close
	committing sync.WaitGroup

	mu     sync.Mutex
	closed bool
	wakers map[*waker]struct{}

	// isUpgraded is set once the due index of earlier versions has been
	// moved into the per-action queues (upgrade.go).
	isUpgraded atomic.Bool
	upgrading  sync.Mutex

	// turn moves the partition that a partitioned Lease serves first.
	turn atomic.Uint64
	// idle: the actions a partitioned Lease need not look for in every
	// partition; leaseAsked, when set (tests), is told how many
	// partitions each partitioned Lease asked.
	idle       idleActions
	leaseAsked func(partitions int)
	// A partitioned store's pruning pass (pruneParts): the partitions
	// whose pass ended, and the one to start the next call from.
	pruning   sync.Mutex
	pruneDone []bool
	pruneTurn int

	// scanBudget bounds the index entries one listing call examines
	// (pageScript); tests lower it.
	scanBudget int

	// codec compresses the event bodies written (compress.go), with dict's
	// dictionary for codecDict (dict.go).
	codec codec
	dict  dictState
	// keys seal the events written and open those read; nil: written in
	// clear (seal.go).
	keys *seal.Keys

	// scriptAccepts makes every batch of accepts run acceptScript
	// (accept=script, or TakeHandOffs), and beforeExec runs between the
	// WATCH and the EXEC of one that does not (plain.go; tests set it).
	// acceptChosen is set when the URL named accept=.
	scriptAccepts atomic.Bool
	acceptChosen  bool
	beforeExec    func()
	// existing: Open refuses a store that is not there (WithExisting);
	// created: this Open made the store (Created).
	existing, created bool
	// noPlain is set once the server refused a transaction (refusesPlain):
	// every batch of accepts then runs acceptScript.
	noPlain atomic.Bool
	// accepting counts the Accepts under way, from their arguments
	// (and, on a partitioned store, their reservation) to their answer
	// (HandsOff).
	accepting atomic.Int64
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Admin = (*Store)(nil)
)

// Option adjusts a Store as it is made.
type Option func(*Store)

// WithLogger has the store write what it has to say (the dictionary its
// bodies are compressed with) to log instead of slog's default logger.
func WithLogger(log *slog.Logger) Option {
	return func(s *Store) { s.log = log }
}

// WithExisting opens only a store that is there: on a Redis that holds
// none under the prefix, Open fails with ErrNoStore and writes nothing. A
// command that reads or changes a store, where a mistyped URL would make
// an empty one, opens it so.
func WithExisting() Option {
	return func(s *Store) { s.existing = true }
}

// ErrNoStore is Open's error, with WithExisting, on a Redis that holds no
// store under the prefix.
var ErrNoStore = errors.New("no store under this prefix")

// Open connects to the Redis that rawURL names and pings it: one server,
// redis://[user:pass@]host:port/db[?prefix=hr] or rediss://…, or a Redis
// Cluster, redis+cluster://[user:pass@]host:port?addr=host2:port2&… or
// rediss+cluster://…, whose seeds are the host and every addr. Event
// bodies are compressed with S2 against a dictionary trained from the
// store's own (dict.go); compress=zstd compresses them with zstd,
// compress=s2 with S2 alone, compress=off stores them as they came
// (compress.go). accept=script runs the accept script for
// every batch of accepts, accept=transaction writes a batch of new events
// on one server as a transaction (plain.go); without accept=, a batch is a
// transaction unless a relay in the process takes hand-offs
// (TakeHandOffs). partitions=N names the number of
// partitions of a new store (partition.go). Other query
// parameters are go-redis client options (redis.ParseURL,
// redis.ParseClusterURL).
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse errors quote the URL, password included.
		return nil, errors.New("redisstore: malformed Redis URL")
	}
	q := u.Query()
	// take removes hookrelay's own parameters from the URL, which go-redis
	// would refuse.
	take := func(name string) (string, bool) {
		if !q.Has(name) {
			return "", false
		}
		v := q.Get(name)
		q.Del(name)
		u.RawQuery = q.Encode()
		return v, true
	}
	prefix := DefaultPrefix
	if v, ok := take("prefix"); ok {
		prefix = v
	}
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("redisstore: prefix %q: want a non-empty prefix without { or }", prefix)
	}
	compress := codecDict
	switch v, _ := take("compress"); v {
	case "", "dict", "on":
	case "zstd":
		compress = codecZstd
	case "s2":
		compress = codecS2
	case "off":
		compress = codecNone
	default:
		return nil, fmt.Errorf("redisstore: compress=%q: want dict (the default), zstd, s2 or off", v)
	}
	scriptAccepts := false
	accept, acceptChosen := take("accept")
	switch accept {
	case "transaction":
	case "script":
		scriptAccepts = true
	default:
		if acceptChosen {
			return nil, fmt.Errorf("redisstore: accept=%q: want transaction or script (without accept=: transaction, or script with a relay that takes hand-offs)", accept)
		}
	}
	partitions := 0
	if v, ok := take("partitions"); ok {
		if partitions, err = parsePartitions(v); err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
	}
	c, where, err := newClient(u)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s := New(c, prefix, opts...)
	s.owned = true
	s.codec = compress
	if compress == codecDict && s.keys != nil {
		// A dictionary would keep fragments of sealed bodies in clear.
		s.codec = codecZstd
	}
	s.scriptAccepts.Store(scriptAccepts)
	s.acceptChosen = acceptChosen
	if err := s.firstPing(ctx, u.Scheme); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("redisstore: ping %s: %w", where, err)
	}
	if err := s.settlePartitions(ctx, partitions); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("redisstore: %s: %w", where, err)
	}
	if err := s.ping(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("redisstore: ping %s: %w", where, err)
	}
	if err := s.checkSetNXGet(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("redisstore: %s: %w", where, err)
	}
	if err := s.loadScripts(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("redisstore: load scripts on %s: %w", where, err)
	}
	if err := s.upgraded(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.startDict(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Created reports whether Open made the store: the Redis held none under
// the prefix.
func (s *Store) Created() bool { return s.created }

// newClient returns a client of the server or cluster u names, and where
// that is for messages: addresses only, never the password.
func newClient(u *url.URL) (redis.UniversalClient, string, error) {
	scheme, cluster := strings.CutSuffix(u.Scheme, "+cluster")
	if !cluster {
		opt, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, "", err
		}
		return redis.NewClient(opt), opt.Addr, nil
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, "", fmt.Errorf("a Redis Cluster has only database 0, the URL names %q", db)
	}
	cu := *u
	cu.Scheme, cu.Path = scheme, ""
	// go-redis reads redis:// and rediss:// only.
	opt, err := redis.ParseClusterURL(cu.String())
	if err != nil {
		return nil, "", err
	}
	cc := redis.NewClusterClient(opt)
	cc.AddHook(failoverHook{cc})
	return cc, "Redis Cluster seeds " + strings.Join(opt.Addrs, ", "), nil
}

// errPlainRedis: a rediss:// URL names a server without TLS.
var errPlainRedis = errors.New("the server answers Redis without TLS")

// firstPing is the first ping of a store opened from a URL of scheme. A
// TLS handshake with a server without TLS waits for every dial's timeout;
// meanwhile the server is asked without TLS (speaksPlainRedis), and a
// plain Redis ends the wait at once with an error that says what to fix.
func (s *Store) firstPing(ctx context.Context, scheme string) error {
	if !strings.HasPrefix(scheme, "rediss") {
		return s.ping(ctx)
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	addr := firstAddr(s.c)
	go func() {
		if speaksPlainRedis(pctx, addr) {
			cancel(errPlainRedis)
		}
	}()
	err := s.ping(pctx)
	if err != nil && errors.Is(context.Cause(pctx), errPlainRedis) {
		return fmt.Errorf("the server answers Redis without TLS, and the URL asks for TLS (%s://): use %s:// for it, or turn TLS on in it",
			scheme, strings.Replace(scheme, "rediss", "redis", 1))
	}
	return err
}

// firstAddr is the address of client's server, or its first seed.
func firstAddr(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		if addrs := c.Options().Addrs; len(addrs) > 0 {
			return addrs[0]
		}
	}
	return ""
}

// speaksPlainRedis reports whether the server at addr answers a PING sent
// without TLS. Asked of a rediss:// server, it tells a server that has no
// TLS, whose handshake would only wait for its timeouts and end in a
// "context deadline exceeded", from one that has: a TLS server answers the
// plain text with an alert record, or nothing.
func speaksPlainRedis(ctx context.Context, addr string) bool {
	if addr == "" {
		return false
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return false
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return false
	}
	// A RESP answer: +PONG, or an error such as -NOAUTH.
	return b[0] == '+' || b[0] == '-'
}

// New returns a store of one partition on client with keys under prefix
// (DefaultPrefix when empty). The prefix must not hold { or }: keys carry
// a hash tag so that a Redis Cluster keeps each script's keys in one slot.
// Close stops the store's goroutines but leaves client open.
func New(client redis.UniversalClient, prefix string, opts ...Option) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	s := &Store{c: client, prefix: prefix, wakers: map[*waker]struct{}{}, scanBudget: defaultScanBudget}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.setPartitions(1)
	s.startCommitters()
	return s
}

// Accept stores the event and its deliveries unless the idempotency key was
// seen on the hook within its window, all in one script. Concurrent Accepts
// share round trips (commit.go).
func (s *Store) Accept(ctx context.Context, a store.Accept) (store.Accepted, error) {
	s.accepting.Add(1)
	defer s.accepting.Add(-1)
	keys, args, h, pack, err := s.acceptArgs(ctx, a)
	if err != nil {
		return store.Accepted{}, err
	}
	var actions []string
	if s.partitioned() {
		actions = actionsOf(a.Deliveries, deliveryAction)
	}
	res, err := s.submit(ctx, &acceptCall{id: a.Event.ID, part: s.partOf(a.Event.ID), deliveries: len(a.Deliveries), actions: actions,
		replicas: a.WaitReplicas, keys: keys, args: args, handed: h, pack: pack, done: make(chan struct{})})
	if err == nil && res.Duplicate && h != nil && h.reserved {
		s.unreserve(ctx, h)
	}
	if err == nil && !res.Duplicate && len(actions) > 0 {
		s.queued(actions)
	}
	return res, err
}

// acceptArgs is the keys and arguments of acceptScript for a, what its
// answer needs to make the leases handed off (nil: none offered), and the
// dictionary the committer compresses the event's body with (nil: the
// event's string is final; see acceptCall.pack). On a partitioned store,
// what a offers is first reserved in partition 0 (reserve).
func (s *Store) acceptArgs(ctx context.Context, a store.Accept) ([]string, []any, *handed, *bodyDict, error) {
	e := a.Event
	if e.ID == "" {
		return nil, nil, nil, nil, errors.New("redisstore: accept: event has no id")
	}
	if err := store.CheckEventID(e); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("redisstore: accept: %w", err)
	}
	e.Status = store.EventIgnored
	if len(a.Deliveries) > 0 {
		e.Status = store.EventAccepted
	}
	ds := make([]store.Delivery, len(a.Deliveries))
	ids := make([]string, len(a.Deliveries))
	for i, d := range a.Deliveries {
		if d.ID == "" {
			return nil, nil, nil, nil, fmt.Errorf("redisstore: accept %s: delivery %d has no id", e.ID, i)
		}
		ds[i] = store.Enqueued(d, e.ID, e.Hook, e.ReceivedAt)
		ids[i] = d.ID
	}
	k := s.at(e.ID)
	if s.partitioned() {
		if err := s.checkPartition(e, ds); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("redisstore: accept: %w", err)
		}
	}
	s.sample(e.Body)
	p := s.packer()
	var pack *bodyDict
	if p.dict != nil && s.keys == nil && len(e.Body) >= minCompress {
		// S2's encoder with a dictionary holds a 64 KiB table on the
		// stack: run here, it would grow the stack of every connection's
		// goroutine. A committer compresses the body instead (repack).
		pack, p = p.dict, packer{codec: codecNone}
	}
	value, err := encodeEvent(e, p, s.keys, ids...)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("redisstore: accept: %w", err)
	}

	windowEnd, keep := "0", int64(0)
	if e.IdempotencyKey != "" && a.KeyTTL > 0 {
		windowEnd = strconv.FormatInt(e.ReceivedAt.Add(a.KeyTTL).UnixMilli(), 10)
		// Relative to Redis's clock, not ReceivedAt: the window itself is
		// judged by the stored end, this only lets Redis free the key.
		keep = (a.KeyTTL + keySlack).Milliseconds()
	}
	keys := make([]string, 0, 5+5*len(ds))
	keys = append(keys, k.idempotency(e.Hook, e.IdempotencyKey), k.queues(), k.event(e.ID),
		k.eventIndex(e.Hook, e.Status), k.indexes())
	names := indexNames(ds, eventIndexName(e.Hook, e.Status))
	args := make([]any, 0, 7+len(names)+len(ds)*8)
	waits := "0"
	if a.WaitReplicas > 0 {
		waits = "1"
	}
	// The count of names at namesAt: acceptCommand gathers the names of
	// a call's events.
	args = append(args, e.ID, ms(e.ReceivedAt), windowEnd, keep, value, waits, len(names))
	args = append(args, names...)
	h := s.offerOf(a.HandOff, ds)
	if h != nil && h.reserved {
		h = s.reserve(ctx, h, ds)
	}
	if h != nil {
		h.keys, h.id, h.value, h.body, h.ds = s.keys, e.ID, value, e.Body, ds
	}
	keys, args = enqueueArgs(k, keys, args, ds, h)
	return keys, args, h, pack, nil
}

// indexNames are the members of the set of listing indexes that name the
// indexes of ds, after those given, each once.
func indexNames(ds []store.Delivery, names ...any) []any {
	for _, d := range ds {
		if n := deliveryIndexName(d.Hook, d.Action); !slices.Contains(names, any(n)) {
			names = append(names, n)
		}
	}
	return names
}

// enqueueArgs appends the keys (of partition k) and arguments enqueueLua
// reads for the deliveries ds, already normalised by store.Enqueued: new,
// pending, never attempted. h, when not nil, is what the accept offers
// its caller: each delivery's hand-off argument.
func enqueueArgs(k keys, keys []string, args []any, ds []store.Delivery, h *handed) ([]string, []any) {
	for i, d := range ds {
		q := k.queue(d.Action)
		lane, lanes, hand := q, q, ""
		switch {
		case d.Lane != "":
			lane, lanes = k.lane(d.Action, d.Lane), k.lanes(d.Action)
		case h != nil && h.hands[i] != "":
			lane, hand = k.leases(d.Action), h.hands[i]
			// Reserved in partition 0 (reserve), it reads no state here.
			if !h.reserved {
				lanes = k.actionState(d.Action)
			}
		}
		keys = append(keys, k.delivery(d.ID), k.deliveryIndex(d.Hook, d.Action), q, lane, lanes)
		args = append(args, d.ID, ms(d.NextAttemptAt), d.Action, d.Lane, ms(d.CreatedAt), d.Hook, d.Rule, hand, 0)
		// The count of extra arguments is set from what follows it.
		count := len(args) - 1
		if d.LastError != "" {
			args = append(args, "err", d.LastError)
		}
		if !d.UpdatedAt.Equal(d.CreatedAt) {
			args = append(args, "updated", ms(d.UpdatedAt))
		}
		args[count] = len(args) - count - 1
	}
	return keys, args
}

// acceptedOf reads the accept script's reply for event id, and makes the
// leases of the deliveries it handed off (h). A duplicate of the event
// itself means the script ran before, on a try whose reply was lost and
// that the client retried: the event is stored, not a duplicate, and what
// the first try handed off is held until its leases end, when a Lease
// takes it.
func acceptedOf(id string, res []any, h *handed) (store.Accepted, error) {
	if len(res) != 3 {
		return store.Accepted{}, fmt.Errorf("redisstore: accept %s: unexpected reply %v", id, res)
	}
	got, _ := res[0].(string)
	dup, _ := res[1].(int64)
	a := store.Accepted{EventID: got, Duplicate: dup == 1 && got != id}
	if flags, _ := res[2].(string); dup == 0 && flags != "" {
		a.Leases = h.leases(flags)
	}
	return a, nil
}

// Event reads an event.
func (s *Store) Event(ctx context.Context, id string) (store.Event, error) {
	v, err := s.c.Get(ctx, s.at(id).event(id)).Result()
	if errors.Is(err, redis.Nil) {
		return store.Event{}, fmt.Errorf("redisstore: event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Event{}, fmt.Errorf("redisstore: event %s: %w", id, err)
	}
	e, _, err := decodeEvent(s.opener(), id, v, true)
	if err != nil {
		return store.Event{}, fmt.Errorf("redisstore: %w", err)
	}
	if e.Trace, err = decodeTrace(s.keys, id, v); err != nil {
		return store.Event{}, fmt.Errorf("redisstore: %w", err)
	}
	return e, nil
}

// Delivery reads a delivery.
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	m, err := s.c.HGetAll(ctx, s.at(id).delivery(id)).Result()
	if err != nil {
		return store.Delivery{}, fmt.Errorf("redisstore: delivery %s: %w", id, err)
	}
	if len(m) == 0 {
		return store.Delivery{}, fmt.Errorf("redisstore: delivery %s: %w", id, store.ErrNotFound)
	}
	m["id"] = id
	return decodeDelivery(m)
}

// Deliveries reads an event's deliveries in accept order.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]store.Delivery, error) {
	k := s.at(eventID)
	res, err := deliveriesScript.Run(ctx, s.c, []string{k.event(eventID)}, k.base).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: deliveries of %s: %w", eventID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: deliveries of %s: %w", eventID, err)
	}
	ds := make([]store.Delivery, 0, len(res))
	for _, r := range res {
		m, err := fieldMap(r)
		if err != nil {
			return nil, fmt.Errorf("redisstore: deliveries of %s: %w", eventID, err)
		}
		if len(m) == 0 {
			continue
		}
		d, err := decodeDelivery(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: deliveries of %s: %w", eventID, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// Attempts reads a delivery's attempts in the order recorded.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]store.Attempt, error) {
	k := s.at(deliveryID)
	keys := []string{k.delivery(deliveryID), k.attempts(deliveryID)}
	res, err := attemptsScript.Run(ctx, s.c, keys).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: attempts of %s: %w", deliveryID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: attempts of %s: %w", deliveryID, err)
	}
	as := make([]store.Attempt, 0, len(res))
	for _, r := range res {
		a, err := decodeAttempt(r)
		if err != nil {
			return nil, fmt.Errorf("redisstore: attempts of %s: %w", deliveryID, err)
		}
		as = append(as, a)
	}
	return as, nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ping(ctx); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// ping asks the servers that hold the store. On a Redis Cluster those are
// the masters of its partitions' slots: go-redis would ask every master,
// and one that is down, holding nothing of the store, would fail it.
func (s *Store) ping(ctx context.Context) error {
	nodes, err := s.masters(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := n.Ping(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}

// masters returns a client of each server that holds a partition of the
// store, each once: the client itself on a single server.
func (s *Store) masters(ctx context.Context) ([]redis.UniversalClient, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return []redis.UniversalClient{s.c}, nil
	}
	seen := map[string]bool{}
	var out []redis.UniversalClient
	for _, k := range s.parts {
		node, err := cc.MasterForKey(ctx, k.base)
		if err != nil {
			return nil, err
		}
		if addr := node.Options().Addr; !seen[addr] {
			seen[addr] = true
			out = append(out, node)
		}
	}
	return out, nil
}

// loadScripts loads the scripts of the hot path into the script cache of
// the servers that hold the store, so that the first accepts and leases
// after a start do not each find them missing and send them again.
func (s *Store) loadScripts(ctx context.Context) error {
	nodes, err := s.masters(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		for _, sc := range hotScripts {
			if err := sc.Load(ctx, n).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hotScripts are the scripts a serving process runs all the time; a
// pipeline sends them by hash alone (runAll).
var hotScripts = []*redis.Script{acceptScript, leaseScript, finishScript, renewScript, releaseScript,
	pageScript, queueStatsScript, gateScript, settleScript}

// Close ends every Wake subscription and, for a store made by Open, closes
// the client.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := s.wakers
	s.wakers = nil
	s.mu.Unlock()
	close(s.quit)
	s.committing.Wait()
	s.dict.mu.Lock()
	s.dict.closed = true
	s.dict.mu.Unlock()
	s.dict.training.Wait()
	for w := range ws {
		w.stop()
		<-w.done
	}
	if s.owned {
		return s.c.Close()
	}
	return nil
}
