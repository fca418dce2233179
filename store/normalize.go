package store

import (
	"fmt"
	"strings"
	"time"
)

// Page sizes of the listings.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// PageLimit is the page size for a requested limit: DefaultLimit unless one
// is given, at most MaxLimit.
func PageLimit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// crockford is the alphabet of a ULID's canonical, upper-case form.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// CheckCursor accepts "" and the ids of one kind that NewID makes (prefix
// "evt" or "dlv", "_" and 26 ULID characters): a page's next is the id of
// the last record it holds or examined.
func CheckCursor(cursor, prefix string) error {
	if cursor == "" {
		return nil
	}
	ulid, ok := strings.CutPrefix(cursor, prefix+"_")
	if !ok || len(ulid) != 26 || strings.Trim(ulid, crockford) != "" {
		return fmt.Errorf("invalid cursor %q: want the next of a previous page", cursor)
	}
	return nil
}

// Enqueued is d as Accept and AddDeliveries store it: a new delivery of
// event eventID, pending and never attempted, whatever the caller left in
// those fields. Unset, its hook is the event's and it was created at
// created; it is due when it was created.
func Enqueued(d Delivery, eventID, hook string, created time.Time) Delivery {
	d.EventID, d.Status, d.Attempts, d.LeasedUntil = eventID, DeliveryPending, 0, time.Time{}
	if d.Hook == "" {
		d.Hook = hook
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = created
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = d.CreatedAt
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	return d
}
