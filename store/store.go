package store

import (
	"context"
	"errors"
	"time"
)

// EventStatus says whether an accepted event led to any delivery.
type EventStatus string

const (
	// EventAccepted: the event matched at least one rule and has deliveries.
	EventAccepted EventStatus = "accepted"
	// EventIgnored: the event matched no rule; it is kept so that
	// "why didn't my rule fire?" has an answer.
	EventIgnored EventStatus = "ignored"
)

// DeliveryStatus is where a delivery stands in its lifecycle
// (see docs/delivery-states.md).
type DeliveryStatus string

const (
	DeliveryPending   DeliveryStatus = "pending"   // waiting for its first attempt
	DeliveryRetrying  DeliveryStatus = "retrying"  // failed at least once, due again later
	DeliverySucceeded DeliveryStatus = "succeeded" // an attempt got a 2xx; final
	DeliveryDead      DeliveryStatus = "dead"      // out of attempts or permanently refused; kept for replay
)

// Event is one inbound webhook as it arrived: the raw body is kept byte for
// byte so that it can be re-verified, re-evaluated and replayed.
type Event struct {
	ID             string
	Hook           string
	ReceivedAt     time.Time
	IdempotencyKey string
	Headers        map[string]string // lower-case names
	Query          map[string]string
	Body           []byte
	Status         EventStatus
	MatchedRules   []string
	// Trace is why the event did what it did (see EventTrace); nil for an
	// event stored without one.
	Trace *EventTrace
	// Duplicates are the later arrivals answered as its duplicates; the
	// store records them, Accept ignores what the event holds.
	Duplicates Duplicates
	// Err is set by ListEvents, never by Event, on an event whose sealed
	// parts the store's keys cannot open (*seal.RecordError): it is listed
	// with what is kept in clear (its ID, Hook, ReceivedAt, Status,
	// MatchedRules and Duplicates) and nothing else, so that one such
	// event does not hide the others.
	Err error
}

// Delivery is one action to perform for one event. Each matched action is
// its own delivery with its own attempts, so one failing action never re-runs
// one that succeeded.
type Delivery struct {
	ID            string
	EventID       string
	Hook          string
	Rule          string
	Action        string
	Status        DeliveryStatus
	Attempts      int       // attempts recorded so far
	NextAttemptAt time.Time // when it is due (pending, retrying)
	LeasedUntil   time.Time // zero unless a worker holds it
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Lane, when set, is the delivery's ordering lane within its action
	// (the action's order_by value for its event): of the deliveries of
	// one action and lane that are not final, only the first accepted is
	// queued; the others wait, pending and not due, until every one
	// before them has succeeded or died. The order is that of the
	// accepts, also within one millisecond of CreatedAt, where ids do not
	// tell it (NewID). A retrying delivery holds its own lane only.
	Lane string
}

// Attempt is the record of one try at a delivery.
type Attempt struct {
	DeliveryID     string
	N              int // 1-based attempt number
	StartedAt      time.Time
	Duration       time.Duration
	Method         string
	URL            string
	RequestHeaders map[string]string // secrets redacted
	StatusCode     int               // 0 when no response was received
	Error          string
	ResponseBody   string // first 4 KiB
	// Outcome is what the attempt decided for its delivery (succeeded,
	// retrying or dead), Reason why (one of the Reason constants), and
	// NextAttemptAt when the delivery was due again after it (retrying).
	Outcome       DeliveryStatus
	Reason        string
	NextAttemptAt time.Time
	// Trace times the request's phases; nil when no request was sent.
	Trace *Trace
}

// Trace is how long each phase of an attempt's request took, as the HTTP
// client saw it: it tells a slow receiver (FirstByte) from a slow name
// lookup (DNS) or a slow network (Connect, TLS). A phase that did not
// happen (no lookup for an address, no handshake on a kept-alive
// connection) is zero.
type Trace struct {
	DNS       time.Duration // name lookup
	Connect   time.Duration // TCP connect
	TLS       time.Duration // TLS handshake
	FirstByte time.Duration // from having a connection to the answer's first byte
	Total     time.Duration // the whole request, connection included
	Reused    bool          // the connection was kept alive from an earlier request
}

// Accept is everything the gateway hands over for one inbound webhook.
type Accept struct {
	Event      Event      // Event.ReceivedAt is "now" for the idempotency check
	Deliveries []Delivery // one per matched action, Status pending, NextAttemptAt set
	KeyTTL     time.Duration
	// WaitReplicas is how many replicas must hold the event before Accept
	// returns; when fewer do in time, Accept fails with ErrNotReplicated
	// (the event may still be stored: a retry is then a duplicate of it). A
	// store without replicas that syncs every write to disk before it
	// returns (SQLite) ignores it.
	WaitReplicas int
	// HandOff, when set, asks the store to lease some of the new event's
	// deliveries to the caller in the accept itself (see HandOff); nil
	// queues them all.
	HandOff *HandOff
}

// HandOff is a relay's offer to take a new event's deliveries as it
// accepts them, instead of leasing them from the queue after the accept
// has woken it: one write fewer per delivery, and no wait for the wake-up.
// A store leases a delivery to the caller only as Lease would lease it
// then: when its action has a quota here with room left (N, counted over
// the event's deliveries), the delivery is in no lane, the action's stored
// state lets it through without a breaker probe (Gate: not paused, not
// blocked) and, when Max is set, the action's live leases across every
// worker are below Max. The others are queued as without an offer. A store
// may hand off none (a Redis store whose accepts it writes as
// transactions does not): the caller must expect no leases at all, and
// every delivery it was not handed is due in the queue.
type HandOff struct {
	Now     time.Time     // when the leases start
	TTL     time.Duration // how long each holds unless renewed
	Actions []ActionQuota // Probe is not used: a probe is never handed off
}

// CanHandOff reports whether a hand-off at now may lease d, given its lane
// and its action's stored state st; the quota and the live-lease cap are
// the store's to count.
func CanHandOff(d Delivery, st ActionState, now time.Time) bool {
	if d.Lane != "" {
		return false
	}
	n, probe := Gate(st, now, 1)
	return n == 1 && !probe
}

// ErrNotReplicated: the event was written, but not to as many replicas as
// Accept.WaitReplicas asked for in time.
var ErrNotReplicated = errors.New("not replicated")

// Accepted is the answer to Accept.
type Accepted struct {
	EventID   string // the stored event, or the original one for a duplicate
	Duplicate bool
	// Leases are the deliveries leased to the caller (Accept.HandOff), with
	// the event as the store holds it: the caller runs each, or releases
	// it, as any lease. None for a duplicate.
	Leases []Lease
}

// Lease is a worker's claim on one due delivery until Until. A worker
// renews it while its attempt runs (Queue.Renew); one that stops renewing
// loses it when Until passes and another worker may take the delivery.
type Lease struct {
	Delivery Delivery
	Event    Event
	Token    string
	Until    time.Time
	// Err, when set, says why the delivery's event could not be read: it
	// is gone (ErrNotFound), or sealed with a key the store does not hold
	// (package seal). The delivery is leased all the same, with Event
	// holding only its ID, so that one unreadable event does not fail the
	// deliveries leased with it: the worker records a failed attempt with
	// the reason, or releases it, as for any other lease.
	Err error
}

// Outcome is what a worker decided after an attempt.
type Outcome struct {
	Status        DeliveryStatus // DeliverySucceeded, DeliveryRetrying or DeliveryDead
	NextAttemptAt time.Time      // with DeliveryRetrying
	Error         string
	Reason        string // why: one of the Reason constants
}

// Why an attempt ended as it did (Outcome.Reason, Attempt.Reason).
const (
	ReasonSucceeded   = "succeeded"    // a 2xx answer
	ReasonRetry       = "retry"        // failed; the schedule has attempts left
	ReasonRetryAfter  = "retry-after"  // failed; the receiver's Retry-After set the next time
	ReasonLastAttempt = "last-attempt" // failed, and the schedule has no attempt left
	ReasonPermanent   = "permanent"    // failed in a way no retry can mend (nothing could be sent)
	ReasonGone        = "gone"         // 410 Gone: the receiver says the endpoint is no more
)

var (
	// ErrNotFound: no event or delivery with that id.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the lease expired and was taken by another worker, was
	// released, or the delivery already finished; the attempt is still
	// recorded, the state is not changed.
	ErrLeaseLost = errors.New("lease lost")
)

// ActionQuota is how many due deliveries of one action a worker pool can
// take now.
type ActionQuota struct {
	Action string
	N      int // at most this many; <= 0 leases none
	// Max, when positive, caps the action's live leases (held and not
	// expired) across every worker on the store, those just given
	// included: the action's concurrency, shared by all processes.
	Max int
	// Recording names leases of the caller's on this action whose
	// attempts have ended and whose outcomes the caller is recording
	// (Finish): the destination is done with them, so those still live
	// do not count against Max. A lease named here that has finished,
	// or is no longer held under the token given, counts as it would
	// anyway. Ignored without Max, and by a hand-off (HandOff), whose
	// cap counts every live lease.
	Recording []LeaseRef
	// Probe is how long a breaker probe of this action holds the gate
	// (see ActionState.BlockedUntil): at least as long as one attempt may
	// take, so that a second probe never starts beside the first.
	Probe time.Duration
}

// LeaseRef names a lease: the delivery it holds, and its token.
type LeaseRef struct {
	DeliveryID string
	Token      string
}

// LeaseRequest asks for due deliveries, action by action: each action is
// served from its own queue, so one action's backlog never hides another's
// due deliveries.
type LeaseRequest struct {
	Now     time.Time
	TTL     time.Duration // how long each lease holds unless renewed
	Actions []ActionQuota
}

// LeaseBatch is the answer to a LeaseRequest.
type LeaseBatch struct {
	Leases []Lease
	// NextDue is the earliest time at which a delivery of one of the
	// requested actions falls due (its next attempt, or the end of a lease
	// held now, the ones just given included); zero when there is none.
	// A paused action does not count; a blocked one counts from its
	// BlockedUntil on.
	NextDue time.Time
}

// Finish is one finished attempt to record. Lease is the lease as Lease
// returned it: a store may read the delivery's action and lane from it,
// which never change.
type Finish struct {
	Lease   Lease
	Attempt Attempt
	Outcome Outcome
}

// Queue is the delivery queue both backends implement. Every method that
// takes several items applies them in one round trip or one transaction;
// each item is still atomic on its own.
type Queue interface {
	// Lease claims, for each quota, up to N deliveries of that action due
	// at Now, earliest due first, and holds them until Now+TTL. An action
	// whose state is paused leases nothing; one whose BlockedUntil is set
	// leases nothing before it and at most one delivery (a probe) from it
	// on, moving BlockedUntil to Now+Probe and its breaker to half-open.
	// A delivery whose event cannot be read comes back with Lease.Err. A
	// call that fails part-way (one partition of several) may return the
	// leases it took with its error: they are held, and the caller gives
	// them back (Release).
	Lease(ctx context.Context, r LeaseRequest) (LeaseBatch, error)
	// Renew extends each lease that still holds to now+ttl and returns the
	// new ends, in order; a zero time marks a lease that was lost.
	Renew(ctx context.Context, now time.Time, ttl time.Duration, ls []Lease) ([]time.Time, error)
	// Finish records each attempt and, while its lease holds on a delivery
	// that is not final, counts it and applies its outcome. A succeeded
	// outcome is applied even when the lease was lost (a 2xx was received:
	// the delivery is done) unless the delivery had already succeeded.
	// The answer holds one error per item: nil, ErrLeaseLost (the attempt
	// is recorded, nothing else changes) or ErrNotFound (nothing recorded).
	// The second result is an error of the store itself: then nothing is
	// known of any item. The same Finish sent again (a client sends a call
	// again when its answer is late; a caller retries after a store error
	// that came after the commit) finds its attempt recorded last: it is
	// not recorded twice, and is answered nil when the delivery shows its
	// outcome, ErrLeaseLost otherwise.
	Finish(ctx context.Context, fs []Finish) ([]error, error)
	// Release gives leases back without counting an attempt: each delivery
	// still held by its lease is due again at now. Used at shutdown so that
	// another process takes the work over at once.
	Release(ctx context.Context, now time.Time, ls []Lease) error
	// Wake returns a channel that receives after new deliveries were
	// enqueued or made due (by any process sharing the store). It is closed
	// when ctx is done.
	Wake(ctx context.Context) <-chan struct{}

	// ActionStates returns the stored state of every action that has one.
	ActionStates(ctx context.Context) ([]ActionState, error)
	// PutActionState stores s if the stored state's Version is still
	// s.Version (0: none stored yet) and returns it with its new Version;
	// ErrConflict when another writer changed it first.
	PutActionState(ctx context.Context, s ActionState) (ActionState, error)
	// QueueStats describes the queue of every action that has queued
	// deliveries at now, in action name order.
	QueueStats(ctx context.Context, now time.Time) ([]QueueStats, error)
}

// BreakerState is where an action's circuit breaker stands.
type BreakerState string

const (
	BreakerClosed   BreakerState = "closed"    // attempts flow
	BreakerOpen     BreakerState = "open"      // no attempt before BlockedUntil
	BreakerHalfOpen BreakerState = "half-open" // one probe is in flight
)

// ActionState is the state of one action shared by every process on a
// store: its pause switch and its circuit breaker. The stores keep it and
// enforce its gate when leasing; the relay decides its transitions.
type ActionState struct {
	Action string
	Paused bool
	// Breaker is closed when empty.
	Breaker BreakerState
	// Failures counts consecutive failed attempts while closed.
	Failures int
	// Opens counts how often the breaker opened since it last closed: the
	// cool-down grows with it.
	Opens int
	// BlockedUntil, when set, gates leasing: nothing before it, one probe
	// at a time from it on.
	BlockedUntil time.Time
	// ChangedAt is when the state last changed, LastError why it opened.
	ChangedAt time.Time
	LastError string
	// Version increases with every write; PutActionState compares it.
	Version int64
}

// QueueStats is the queue of one action at a moment.
type QueueStats struct {
	Action    string
	Due       int       // due and not held by a live lease
	InFlight  int       // held by a lease that has not expired
	Scheduled int       // waiting for a later attempt
	OldestDue time.Time // the earliest due time among Due; zero when none

	// Ordering lanes (Delivery.Lane): Lanes have deliveries not final;
	// Waiting deliveries wait behind the first of their lane; a lane is
	// blocked while its first delivery is retrying and others wait behind
	// it. OldestLaneHead is when the oldest first delivery of a lane was
	// created; zero when there is none.
	Lanes          int
	Waiting        int
	BlockedLanes   int
	OldestLaneHead time.Time
}

// Store is the contract both backends (redisstore, sqlitestore) fulfil and
// store/storetest checks.
type Store interface {
	// Accept atomically checks the idempotency key (per hook), stores the
	// event and enqueues its deliveries. A duplicate within the key's TTL
	// stores and enqueues nothing and returns the original event id.
	Accept(ctx context.Context, a Accept) (Accepted, error)

	Queue

	Event(ctx context.Context, id string) (Event, error)
	Delivery(ctx context.Context, id string) (Delivery, error)
	Deliveries(ctx context.Context, eventID string) ([]Delivery, error)
	Attempts(ctx context.Context, deliveryID string) ([]Attempt, error)

	// Ping reports whether the store can take writes now.
	Ping(ctx context.Context) error
	Close() error

	// Readiness (see identity.go): the store's identity, by which a
	// serving process notices that the store lost its data, and a write
	// probe.

	// Identity returns the store's identity; ErrNotFound when it has none.
	Identity(ctx context.Context) (Identity, error)
	// PutIdentity stores id in place of the identity whose ID is prev (""
	// when none is stored); ErrConflict, storing nothing, when the stored
	// identity is another one.
	PutIdentity(ctx context.Context, prev string, id Identity) error
	// Probe really writes: it overwrites the store's one probe record with
	// at, through the same path as an event, so it fails when an event
	// could not be stored (a full disk: ErrDiskFull). It never grows the
	// store.
	Probe(ctx context.Context, at time.Time) error
}

// EventFilter selects events for listing, newest first.
type EventFilter struct {
	Hook   string
	Status EventStatus
	Since  time.Time // ReceivedAt >= Since, when set
	Until  time.Time // ReceivedAt < Until, when set
	Cursor string    // the Next of the previous page; empty for the first page
	Limit  int       // 1..1000; 0 means 100
}

// DeliveryFilter selects deliveries for listing, newest first.
type DeliveryFilter struct {
	Hook    string
	Action  string
	Status  DeliveryStatus
	EventID string
	Cursor  string
	Limit   int
}

// APIKey is an admin API key. Only a hash of its secret is stored.
type APIKey struct {
	ID         string
	Name       string
	Prefix     string   // the first characters of the secret, to recognise it
	Hash       string   // hex SHA-256 of the whole secret
	Scopes     []string // "read", "write", "webhooks"
	CreatedAt  time.Time
	LastUsedAt time.Time // zero until first used
	RevokedAt  time.Time // zero while the key is valid
}

// ErrConflict: the operation does not apply to the record in its current
// state (retrying a delivery that succeeded or that a worker holds).
var ErrConflict = errors.New("conflict")

// Admin is what operators need beyond the data path: listing, retry,
// replay and API keys. Both backends implement it; store/storetest checks it.
type Admin interface {
	// ListEvents returns one page of events matching f, newest first, and
	// the cursor of the next page ("" when there is none). Events carry no
	// Body in listings.
	ListEvents(ctx context.Context, f EventFilter) ([]Event, string, error)
	// ListDeliveries returns one page of deliveries matching f, newest first.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error)
	// RetryDelivery makes a dead or retrying delivery due at at, with status
	// pending; its attempt count is kept, so a dead delivery gets one more
	// attempt before it is dead again. ErrConflict for a succeeded delivery or
	// one leased now; ErrNotFound for an unknown id.
	RetryDelivery(ctx context.Context, id string, at time.Time) (Delivery, error)
	// AddDeliveries enqueues new deliveries for a stored event (replay) and
	// marks it accepted, adding rules to its matched rules.
	AddDeliveries(ctx context.Context, eventID string, rules []string, ds []Delivery) error

	CreateKey(ctx context.Context, k APIKey) error
	Keys(ctx context.Context) ([]APIKey, error)
	// KeyByHash finds a key, revoked or not, by the hash of its secret.
	KeyByHash(ctx context.Context, hash string) (APIKey, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	// TouchKey records that a key was used at at.
	TouchKey(ctx context.Context, id string, at time.Time) error
}

// Retention: pruning old events. Kept apart from Admin so that each part
// of the contract stays small.

// Prune asks for one batch of pruning. An event is prunable once it is
// final and older than its window, counted from its ReceivedAt: an ignored
// event, or one whose every delivery succeeded, once received before
// CompletedBefore; one with a dead delivery (and none pending or
// retrying), once received before FailedBefore. An event with a delivery
// pending or retrying is never pruned, whatever its age.
type Prune struct {
	Now             time.Time
	CompletedBefore time.Time
	FailedBefore    time.Time
	// Owner names the process pruning. One process prunes a store at a
	// time: a call holds the pruning lease until LeaseUntil, and another
	// owner's calls prune nothing (Pruned.Held) until it ends.
	Owner      string
	LeaseUntil time.Time
	// Limit bounds how many events one call examines (not only those it
	// deletes), so that one call holds the store for a bounded time.
	Limit int
}

// Check refuses a Prune that names no owner, examines nothing or holds a
// lease that has already ended; both backends apply it.
func (p Prune) Check() error {
	if p.Owner == "" || p.Limit <= 0 || !p.LeaseUntil.After(p.Now) {
		return errors.New("prune: want an owner, a positive limit and a lease ending after now")
	}
	return nil
}

// Bound is the end of the later window: no event received after it can
// be pruned.
func (p Prune) Bound() time.Time {
	if p.FailedBefore.After(p.CompletedBefore) {
		return p.FailedBefore
	}
	return p.CompletedBefore
}

// Pruned is the answer to a Prune.
type Pruned struct {
	Events, Deliveries, Attempts int // removed by this call
	// More is set while events older than the windows remain to be
	// examined; the next call goes on where this one stopped, and the one
	// after the last starts again from the oldest event.
	More bool
	// Held is set when another owner holds the pruning lease: nothing was
	// examined.
	Held bool
}

// Pruner removes old events with their deliveries, attempts and every
// index entry that names them, so that listings and counts stay right.
// Both backends implement it; store/storetest checks it.
type Pruner interface {
	Prune(ctx context.Context, p Prune) (Pruned, error)
}

// Prunable reports whether an event of status s whose deliveries have the
// statuses ds is prunable under p once received at received.
func Prunable(p Prune, s EventStatus, received time.Time, ds []DeliveryStatus) bool {
	failed := false
	for _, d := range ds {
		switch d {
		case DeliveryDead:
			failed = true
		case DeliverySucceeded:
		default:
			return false
		}
	}
	if s == EventAccepted && len(ds) == 0 {
		// Accepted without deliveries is not a state Accept makes; keep it
		// rather than guess.
		return false
	}
	if failed {
		return received.Before(p.FailedBefore)
	}
	return received.Before(p.CompletedBefore)
}

// Resealer seals stored events anew under the store's current key (package
// seal), for a key rotation: events stored in clear, or sealed with an
// older key, are rewritten; those already under the current key are left
// as they are. An event sealed with a key the store was not given stops
// the batch with an error naming it, and nothing of the batch is
// rewritten with a guess.
type Resealer interface {
	// Reseal examines up to n events whose ids follow after ("" for the
	// first), in id order.
	Reseal(ctx context.Context, after string, n int) (Resealed, error)
	// OldestEventID is the id of the first stored event in id order (the
	// oldest), "" when the store holds none.
	OldestEventID(ctx context.Context) (string, error)
}

// Resealed is what one Reseal call did.
type Resealed struct {
	Examined int    // events read
	Resealed int    // of them, rewritten under the current key
	Next     string // the id to go on after; "" once every event was examined
}
