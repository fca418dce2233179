package relay

import "time"

// Backoff says how long to wait after a failed attempt.
type Backoff interface {
	// Next returns the wait after attempt number attempt (1-based) failed,
	// and false when no attempt is left.
	Next(attempt int) (time.Duration, bool)
}

// Schedule is a fixed list of waits: attempt n failing waits Schedule[n-1].
// A schedule of k waits allows k+1 attempts.
type Schedule []time.Duration

// Next implements Backoff.
func (s Schedule) Next(attempt int) (time.Duration, bool) {
	if attempt < 1 || attempt > len(s) {
		return 0, false
	}
	return s[attempt-1], true
}

// maxRetryAfter bounds how far a receiver's Retry-After may push a delivery.
const maxRetryAfter = 24 * time.Hour
