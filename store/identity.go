package store

import (
	"errors"
	"time"
)

// IdentityState says why a store's identity was written.
type IdentityState string

const (
	// IdentityNew is written at the initialisation of a store that had
	// none: its first start.
	IdentityNew IdentityState = "new"
	// IdentityLost is written by a serving process that found the identity
	// it knew gone or replaced: the store lost its data. It stays until an
	// operator accepts the loss.
	IdentityLost IdentityState = "lost"
	// IdentityReset is written when an operator accepts a loss
	// (`hookrelay store reset-ack`, `serve --accept-store-reset`).
	IdentityReset IdentityState = "reset"
)

// Identity is the record a store holds about itself. A store that lost its
// data (a Redis restarted empty, flushed, or replaced) loses it too, which
// is how every process sharing the store notices.
type Identity struct {
	ID        string // fresh each time one is written
	CreatedAt time.Time
	State     IdentityState
	// Previous is the ID of the identity this one replaced; empty for the
	// first.
	Previous string
}

// UnexpectedIdentityError: the store holds another identity than the one
// the process was told to expect (ReadinessOptions.Expect). The store is
// not the one meant, or an operator accepted a loss since, which wrote a
// new identity.
type UnexpectedIdentityError struct {
	Want string
	Got  Identity
}

func (e *UnexpectedIdentityError) Error() string {
	return "the store's identity is " + e.Got.ID + " (" + string(e.Got.State) + " since " +
		e.Got.CreatedAt.UTC().Format(time.RFC3339) + "), not the expected " + e.Want
}

// ErrDiskFull: the store's file system has no room left for a write.
var ErrDiskFull = errors.New("disk full")
