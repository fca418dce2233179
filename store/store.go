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
}

// Accept is everything the gateway hands over for one inbound webhook.
type Accept struct {
	Event      Event      // Event.ReceivedAt is "now" for the idempotency check
	Deliveries []Delivery // one per matched action, Status pending, NextAttemptAt set
	KeyTTL     time.Duration
}

// Accepted is the answer to Accept.
type Accepted struct {
	EventID   string // the stored event, or the original one for a duplicate
	Duplicate bool
}

// Lease is a worker's claim on one due delivery until Until. A worker that
// does not Finish before then loses it and another worker may take it.
type Lease struct {
	Delivery Delivery
	Event    Event
	Token    string
	Until    time.Time
}

// Outcome is what a worker decided after an attempt.
type Outcome struct {
	Status        DeliveryStatus // DeliverySucceeded, DeliveryRetrying or DeliveryDead
	NextAttemptAt time.Time      // with DeliveryRetrying
	Error         string
}

var (
	// ErrNotFound: no event or delivery with that id.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the lease expired and was taken by another worker, or the
	// delivery already finished; the attempt is still recorded, the state is not changed.
	ErrLeaseLost = errors.New("lease lost")
)

// Store is the contract both backends (redisstore, sqlitestore) fulfil and
// store/storetest checks.
type Store interface {
	// Accept atomically checks the idempotency key (per hook), stores the
	// event and enqueues its deliveries. A duplicate within the key's TTL
	// stores and enqueues nothing and returns the original event id.
	Accept(ctx context.Context, a Accept) (Accepted, error)
	// Lease claims up to n deliveries due at now for ttl.
	Lease(ctx context.Context, now time.Time, n int, ttl time.Duration) ([]Lease, error)
	// Finish records the attempt and applies the outcome in one step.
	Finish(ctx context.Context, l Lease, a Attempt, o Outcome) error
	// NextDue is when the earliest pending, retrying or leased delivery is
	// due (a lease falls due when it expires); zero when there is none.
	NextDue(ctx context.Context) (time.Time, error)
	// Wake returns a channel that receives after an Accept (by any process
	// sharing the store) enqueued deliveries. It is closed when ctx is done.
	Wake(ctx context.Context) <-chan struct{}

	Event(ctx context.Context, id string) (Event, error)
	Delivery(ctx context.Context, id string) (Delivery, error)
	Deliveries(ctx context.Context, eventID string) ([]Delivery, error)
	Attempts(ctx context.Context, deliveryID string) ([]Attempt, error)

	// Ping reports whether the store can take writes now.
	Ping(ctx context.Context) error
	Close() error
}
