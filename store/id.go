package store

import (
	"crypto/rand"
	"fmt"
	"strings"
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

// CheckEventID accepts an event whose id NewID made at its ReceivedAt:
// listings bound a time window by ids (IDsBefore), so an event whose id
// told another time would fall out of the windows that hold it.
func CheckEventID(e Event) error {
	u, ok := strings.CutPrefix(e.ID, "evt_")
	if !ok {
		return fmt.Errorf("event id %q: want one that store.NewID(\"evt\", …) makes", e.ID)
	}
	parsed, err := ulid.ParseStrict(u)
	if err != nil {
		return fmt.Errorf("event id %q: want one that store.NewID(\"evt\", …) makes: %w", e.ID, err)
	}
	if int64(parsed.Time()) != e.ReceivedAt.UnixMilli() {
		return fmt.Errorf("event id %q: made at %s, but the event was received at %s: want the id made at its receipt",
			e.ID, ulid.Time(parsed.Time()).UTC().Format(time.RFC3339Nano), e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
