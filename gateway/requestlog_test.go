package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is a log destination safe for the timer's goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func newTestRequestLog(level slog.Level) (*requestLog, *lockedBuffer) {
	var b lockedBuffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: level}))
	return newRequestLog(log, RefusalLog{Lines: 3, Every: 10 * time.Second}), &b
}

// Each kind gets its lines per period; the rest are summed up in one line
// when the period ends, with their count, also when no refusal follows.
func TestRefusalLinesLimitedPerKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b := newTestRequestLog(slog.LevelInfo)
		ctx := context.Background()
		for i := range 100 {
			l.refused(ctx, slog.LevelInfo, refusalKind{"a", 401}, "request refused", "n", i)
		}
		for range 5 {
			l.refused(ctx, slog.LevelInfo, refusalKind{"", 404}, "request refused")
		}
		l.refused(ctx, slog.LevelInfo, refusalKind{"a", 413}, "request refused")
		if got := len(b.lines("request refused")); got != 3+3+1 {
			t.Errorf("%d refusal lines, want 3 per kind:\n%s", got, b.lines(""))
		}
		if got := b.lines("more"); len(got) != 0 {
			t.Errorf("a summary before the period ended: %q", got)
		}

		time.Sleep(10 * time.Second)
		synctest.Wait()
		want := map[string]string{
			"… and 97 more refused requests like this in the last 10s": "status=401 more=97 hook=a",
			"… and 2 more refused requests like this in the last 10s":  "status=404 more=2",
		}
		sums := b.lines("more=")
		if len(sums) != len(want) {
			t.Fatalf("summaries %q, want one for each kind that had lines held back", sums)
		}
		for msg, attrs := range want {
			found := false
			for _, s := range sums {
				found = found || strings.Contains(s, "level=INFO") && strings.Contains(s, msg) && strings.HasSuffix(s, attrs)
			}
			if !found {
				t.Errorf("no summary %q with %q in %q", msg, attrs, sums)
			}
		}

		// A new period: lines are written again.
		l.refused(ctx, slog.LevelInfo, refusalKind{"a", 401}, "request refused", "n", "again")
		if got := b.lines("n=again"); len(got) != 1 {
			t.Errorf("a refusal in a new period was not written: %q", got)
		}
	})
}

// A refusal after the period's end closes it before its timer does: the
// summary comes once, before the new period's line.
func TestRefusalPeriodClosedByNextRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b := newTestRequestLog(slog.LevelInfo)
		ctx := context.Background()
		k := refusalKind{"a", 503}
		for range 4 {
			l.refused(ctx, slog.LevelError, k, "request failed")
		}
		l.mu.Lock()
		l.kinds[k].start = l.kinds[k].start.Add(-10 * time.Second) // as if the timer were late
		l.mu.Unlock()
		l.refused(ctx, slog.LevelError, k, "request failed", "n", "next")
		time.Sleep(20 * time.Second)
		synctest.Wait()
		all := b.lines("level=ERROR")
		if len(all) != 5 || !strings.Contains(all[3], "… and 1 more failed requests like this in the last 10s") || !strings.Contains(all[4], "n=next") {
			t.Errorf("lines %q, want 3 lines, the summary of 1, then the next line", all)
		}
	})
}

// Lines held back are still written at debug level; flushing sums up the
// periods still open at once.
func TestRefusalLinesHeldBackAtDebugAndFlushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b := newTestRequestLog(slog.LevelDebug)
		ctx := context.Background()
		for i := range 5 {
			l.refused(ctx, slog.LevelInfo, refusalKind{"a", 401}, "request refused", "n", i)
		}
		time.Sleep(time.Second)
		l.flush()
		if got := b.lines("level=INFO msg=\"request refused\""); len(got) != 3 {
			t.Errorf("info lines %q, want 3", got)
		}
		if got := b.lines("level=DEBUG msg=\"request refused\""); len(got) != 2 {
			t.Errorf("debug lines %q, want the 2 held back", got)
		}
		sums := b.lines("more=")
		if len(sums) != 1 || !strings.Contains(sums[0], "… and 2 more refused requests like this in the last 1s") {
			t.Errorf("summaries %q, want one of 2 in the last 1s", sums)
		}
		// The flushed period's timer writes nothing more.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := b.lines("more="); len(got) != 1 {
			t.Errorf("summaries after the flush: %q", got)
		}
	})
}

// With refusals below the log's level nothing is kept.
func TestRefusalLinesBelowLevel(t *testing.T) {
	l, b := newTestRequestLog(slog.LevelWarn)
	for range 20 {
		l.refused(context.Background(), slog.LevelInfo, refusalKind{"a", 401}, "request refused")
	}
	l.flush()
	if got := b.lines("refused"); len(got) != 0 || len(l.kinds) != 0 {
		t.Errorf("lines %q, kinds %v, want none", got, l.kinds)
	}
}
