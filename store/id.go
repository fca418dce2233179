package store

import (
	"crypto/rand"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a new identifier with the given prefix ("evt", "dlv"). The
// ULID part sorts by creation time, so newest-first listings page by id.
func NewID(prefix string, now time.Time) string {
	return prefix + "_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// IDsBefore is the least id of kind prefix that NewID makes at t: every id
// made earlier sorts below it, every one made at t or later not below.
func IDsBefore(prefix string, t time.Time) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(t))
	return prefix + "_" + u.String()
}
