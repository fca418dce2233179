package rules

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits bound the evaluation of one event's expressions: Timeout is the
// wall-clock time its key, rules and response (or one delivery's
// templates) may take together; Memory is what one expression may allocate.
type Limits struct {
	Timeout time.Duration
	Memory  int64 // bytes
}

// DefaultLimits apply when the config names none.
var DefaultLimits = Limits{Timeout: 100 * time.Millisecond, Memory: 8 << 20}

// bytesPerValue is what one decoded payload value is reckoned to cost, in
// bytes: an interface slot plus its share of a map or slice.
const bytesPerValue = 64

// MaxValues is how many values a payload may decode to under l: a body
// whose tree would take more memory than an expression may allocate is
// refused before it is built.
func (l Limits) MaxValues() int {
	return int(max(l.withDefaults().Memory/bytesPerValue, 1024))
}

func (l Limits) withDefaults() Limits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultLimits.Timeout
	}
	if l.Memory <= 0 {
		l.Memory = DefaultLimits.Memory
	}
	return l
}

// ErrOverBudget is wrapped by every evaluation error caused by an
// expression taking more time or memory than its Limits allow.
var ErrOverBudget = errors.New("evaluation over budget")

// budget is one event's evaluation allowance. It lives in Env where no
// expression can name it, and is read by the guards the compiler inserts
// (see guard.go). It is used by one goroutine at a time; only expired is
// written from elsewhere, by the deadline timer.
type budget struct {
	limits   Limits
	deadline time.Time
	expired  atomic.Bool
	timer    *time.Timer // armed at the first tick of a run, stopped at its end
	used     int64       // bytes charged by the current run
}

func newBudget(l Limits) *budget {
	l = l.withDefaults()
	return &budget{limits: l, deadline: time.Now().Add(l.Timeout)}
}

// vmElements is the expr VM's own MemoryBudget, which counts elements of
// ranges, literals, map() and filter() results: 16 bytes each.
func (b *budget) vmElements() uint {
	return uint(max(b.limits.Memory/16, 1))
}

// tick is called once per iteration of every loop an expression runs. A
// timer, armed at the first tick of a run, raises expired at the deadline,
// so that a tick costs one atomic load however slow each iteration is.
func (b *budget) tick() error {
	if b.timer == nil {
		b.arm()
	}
	if b.expired.Load() {
		return b.overTime()
	}
	return nil
}

func (b *budget) arm() {
	d := time.Until(b.deadline)
	if d <= 0 {
		b.expired.Store(true)
		return
	}
	b.timer = time.AfterFunc(d, func() { b.expired.Store(true) })
}

// work charges an operation expected to take about ns nanoseconds in one
// go (a sort, a regular expression): it is refused before it starts when
// it would end after the deadline.
func (b *budget) work(ns int64) error {
	if b.expired.Load() {
		return b.overTime()
	}
	if ns > 1000 && time.Now().Add(time.Duration(ns)).After(b.deadline) {
		return b.overTime()
	}
	return b.tick()
}

// alloc charges n bytes about to be allocated; it fails, before the
// allocation, when the run would then have allocated more than the limit.
func (b *budget) alloc(n int64) error {
	if n < 0 || n > b.limits.Memory-b.used {
		return fmt.Errorf("%w: would allocate more than %s", ErrOverBudget, formatBytes(b.limits.Memory))
	}
	b.used += n
	return nil
}

func (b *budget) overTime() error {
	return fmt.Errorf("%w: took longer than %v", ErrOverBudget, b.limits.Timeout)
}

// endRun is called when one expression's run ends: memory is counted per
// run, time for the whole event.
func (b *budget) endRun() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.used = 0
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
