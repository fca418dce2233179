package rules

import (
	"time"

	"github.com/hookrelay/hookrelay/store"
)

// Env is the typed environment every expression sees. Compiling against it
// turns a misspelt name (bdy.id, header["x"]) into a load-time error.
type Env struct {
	Body    any               `expr:"body"`    // decoded payload (see DecodeBody)
	Headers map[string]string `expr:"headers"` // lower-case names
	Query   map[string]string `expr:"query"`
	Hook    string            `expr:"hook"`
	Event   EventInfo         `expr:"event"`

	raw    []byte    // the payload as it arrived, for actions that forward it
	budget *budget   // shared by the copies of one Env; nil: each run gets its own
	at     time.Time // what now() answers; zero: the clock
}

// At returns env with now() answering t instead of reading the clock: a
// comparison of two renderings of one event must not see time pass
// between them.
func (e Env) At(t time.Time) Env {
	e.at = t
	return e
}

// Limit returns env with a fresh budget of l, which starts now: every
// expression run against the result (or a copy of it) draws on the same
// time allowance, and each may allocate up to l.Memory.
func (e Env) Limit(l Limits) Env {
	e.budget = newBudget(l)
	return e
}

// RawBody is the payload as it arrived, byte for byte.
func (e Env) RawBody() []byte { return e.raw }

// EventInfo is what expressions can see of the stored event itself.
type EventInfo struct {
	ID         string    `expr:"id"`
	ReceivedAt time.Time `expr:"received_at"`
}

// NewEnv builds the environment for an event whose payload decoded to body.
// Missing header and query maps become empty ones, so that headers["x"] is
// "" rather than an error.
func NewEnv(ev store.Event, body any) Env {
	h, q := ev.Headers, ev.Query
	if h == nil {
		h = map[string]string{}
	}
	if q == nil {
		q = map[string]string{}
	}
	return Env{
		Body:    body,
		Headers: h,
		Query:   q,
		Hook:    ev.Hook,
		Event:   EventInfo{ID: ev.ID, ReceivedAt: ev.ReceivedAt},
		raw:     ev.Body,
	}
}
