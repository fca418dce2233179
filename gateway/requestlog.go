package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// RefusalLog bounds the lines written about refused and failed requests:
// per hook and status, at most Lines in each period of Every. The rest
// are counted and summed up in one line when the period ends, so a flood
// of bad requests cannot flood the log and nothing is hidden without a
// trace. The zero value is 10 lines per 10 seconds.
type RefusalLog struct {
	Lines int
	Every time.Duration
}

// Defaults of RefusalLog.
const (
	DefaultRefusalLines = 10
	DefaultRefusalEvery = 10 * time.Second
)

// requestLog is the gateway's log. Lines about refusals go through
// refused, which limits them; the counters of the metrics carry the
// volume.
type requestLog struct {
	*slog.Logger
	lines int
	every time.Duration

	mu    sync.Mutex
	kinds map[refusalKind]*refusalPeriod
}

// refusalKind is what makes refusals alike: the hook ("" for a request
// that named none) and the status. Both come from a bounded set.
type refusalKind struct {
	hook   string
	status int
}

// refusalPeriod is one period of a kind's lines.
type refusalPeriod struct {
	start  time.Time
	logged int
	held   int
	level  slog.Level
	timer  *time.Timer // ends the period once a line was held back
}

func newRequestLog(log *slog.Logger, o RefusalLog) *requestLog {
	if o.Lines <= 0 {
		o.Lines = DefaultRefusalLines
	}
	if o.Every <= 0 {
		o.Every = DefaultRefusalEvery
	}
	return &requestLog{Logger: log, lines: o.Lines, every: o.Every, kinds: map[refusalKind]*refusalPeriod{}}
}

// refused writes a line about a refused or failed request at level, unless
// its kind already had its lines in this period: then the line is counted
// for the period's summary and written at debug level only.
func (l *requestLog) refused(ctx context.Context, level slog.Level, k refusalKind, msg string, attrs ...any) {
	if !l.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	p := l.kinds[k]
	var ended *refusalPeriod
	if p != nil && now.Sub(p.start) >= l.every {
		// The period is over and its timer has not told yet.
		if p.timer != nil {
			p.timer.Stop()
		}
		ended, p = p, nil
	}
	if p == nil {
		p = &refusalPeriod{start: now}
		l.kinds[k] = p
	}
	write := p.logged < l.lines
	if write {
		p.logged++
	} else {
		p.held++
		p.level = level
		if p.timer == nil {
			period := p
			p.timer = time.AfterFunc(p.start.Add(l.every).Sub(now), func() { l.end(k, period) })
		}
	}
	l.mu.Unlock()
	if ended != nil {
		l.summary(k, ended, now)
	}
	if !write {
		level = slog.LevelDebug
	}
	l.Log(ctx, level, msg, attrs...)
}

// end closes p when its time is up, unless a refusal closed it first.
func (l *requestLog) end(k refusalKind, p *refusalPeriod) {
	l.mu.Lock()
	if l.kinds[k] != p {
		l.mu.Unlock()
		return
	}
	delete(l.kinds, k)
	l.mu.Unlock()
	l.summary(k, p, time.Now())
}

// flush writes the summaries of the periods still open, at once.
func (l *requestLog) flush() {
	now := time.Now()
	l.mu.Lock()
	ended := l.kinds
	l.kinds = map[refusalKind]*refusalPeriod{}
	for _, p := range ended {
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	l.mu.Unlock()
	for k, p := range ended {
		l.summary(k, p, now)
	}
}

// summary writes the one line that stands for the lines p held back.
func (l *requestLog) summary(k refusalKind, p *refusalPeriod, now time.Time) {
	if p.held == 0 {
		return
	}
	d := min(now.Sub(p.start), l.every).Round(100 * time.Millisecond)
	what := "refused"
	if k.status >= http.StatusInternalServerError {
		what = "failed"
	}
	attrs := []any{"status", k.status, "more", p.held}
	if k.hook != "" {
		attrs = append(attrs, "hook", k.hook)
	}
	l.Log(context.Background(), p.level, fmt.Sprintf("… and %d more %s requests like this in the last %v", p.held, what, d), attrs...)
}
