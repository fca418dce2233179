package config

// Retention: how long finished events are kept.

import (
	"maps"
	"slices"
	"time"
)

// Default retention windows.
const (
	DefaultRetentionCompleted = 7 * 24 * time.Hour
	DefaultRetentionFailed    = 30 * 24 * time.Hour
)

// Retention is how long events are kept once final, counted from when
// they were received (retention:). An event with a delivery still pending
// or retrying is kept whatever its age.
type Retention struct {
	// Completed applies to ignored events and to those whose every
	// delivery succeeded.
	Completed time.Duration
	// Failed applies to events with a dead delivery.
	Failed time.Duration
}

type rawRetention struct {
	Completed scalar `yaml:"completed"`
	Failed    scalar `yaml:"failed"`
}

// compileRetention reads the top-level retention: section. A window must
// be at least every hook's idempotency ttl: an event pruned while its key's
// window is still open would let a duplicate in as a new event.
func (l *loader) compileRetention(file string, r *rawRetention, hooks map[string]*Hook, raw map[string]*rawHook) Retention {
	out := Retention{Completed: DefaultRetentionCompleted, Failed: DefaultRetentionFailed}
	if r == nil {
		r = &rawRetention{}
	}
	for _, f := range []struct {
		name string
		s    scalar
		to   *time.Duration
	}{{"completed", r.Completed, &out.Completed}, {"failed", r.Failed, &out.Failed}} {
		if f.s.Set {
			d, err := time.ParseDuration(f.s.Value)
			if err != nil || d <= 0 {
				l.errorf(file, f.s.pos, "retention.%s: want a positive duration such as 168h, got %q", f.name, f.s.Value)
				continue
			}
			*f.to = d
		}
		for _, name := range slices.Sorted(maps.Keys(hooks)) {
			h := hooks[name]
			if h.KeyTTL <= *f.to {
				continue
			}
			p := f.s.pos
			if !f.s.Set {
				// The default window: the hook's ttl is what to change.
				if rh := raw[name]; rh != nil && rh.Idempotency != nil {
					p = rh.Idempotency.TTL.pos
				}
			}
			l.errorf(file, p, "retention.%s: %v is shorter than hook %q's idempotency ttl of %v: a duplicate of a pruned event would be taken as new; keep events at least as long as keys", f.name, *f.to, name, h.KeyTTL)
			break
		}
	}
	return out
}
