package rules

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Limits bound the evaluation of one event's expressions: Timeout is the
// time its key, rules and response (or one delivery's templates) may spend
// together in loops and other work that grows with the payload; Memory is
// what one expression may allocate.
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
//
// Time is what the event's runs spend in loops and other work that grows
// with the data: a run that never loops does a bounded amount of work per
// operation of its program, so it is neither timed nor refused, and a
// cheap rule still evaluates after an expensive one spent the allowance.
// Time between runs (storing the event, say) is not counted.
type budget struct {
	limits  Limits
	spent   time.Duration // by earlier runs
	started time.Time     // when the current run began to loop; zero before
	ticks   int           // of the current run
	expired atomic.Bool
	timer   *time.Timer // raises expired when the allowance is spent
	used    int64       // bytes charged by the current run
}

// timerAfter is the iteration from which a run's time is watched by a
// timer rather than by reading the clock at each step: short loops, the
// common case, never pay for a timer.
const timerAfter = 64

func newBudget(l Limits) *budget {
	return &budget{limits: l.withDefaults()}
}

// vmElements is the expr VM's own MemoryBudget, which counts elements of
// ranges, literals, map() and filter() results: 16 bytes each.
func (b *budget) vmElements() uint {
	return uint(max(b.limits.Memory/16, 1))
}

// tick is called once per iteration of a loop whose predicate is not
// cheap (see guardLoop).
func (b *budget) tick() error { return b.step(1) }

// step charges n iterations. Until a run has taken timerAfter of them,
// each step reads the clock; then a timer raises expired when the time
// left runs out, so that a step costs one atomic load however slow each
// iteration is.
func (b *budget) step(n int) error {
	if b.started.IsZero() {
		b.started = time.Now()
	}
	b.ticks += n
	if b.timer == nil && !b.expired.Load() {
		if left := b.left(); left <= 0 {
			b.expired.Store(true)
		} else if b.ticks >= timerAfter {
			b.timer = time.AfterFunc(left, func() { b.expired.Store(true) })
		}
	}
	if b.expired.Load() {
		return b.overTime()
	}
	return nil
}

// left is the time the current run may still take.
func (b *budget) left() time.Duration {
	return b.limits.Timeout - b.spent - time.Since(b.started)
}

// work charges an operation expected to take about ns nanoseconds in one
// go (a sort, a regular expression): it is refused before it starts when
// it would run past the time left.
func (b *budget) work(ns int64) error {
	if err := b.tick(); err != nil {
		return err
	}
	if ns > 1000 && time.Duration(ns) > b.left() {
		return fmt.Errorf("%w: would take longer than the %v allowed", ErrOverBudget, b.limits.Timeout)
	}
	return nil
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
	if b.spent >= b.limits.Timeout {
		return fmt.Errorf("%w: the event's evaluation time (%v) was spent by earlier expressions", ErrOverBudget, b.limits.Timeout)
	}
	return fmt.Errorf("%w: took longer than %v", ErrOverBudget, b.limits.Timeout)
}

// endRun is called when one expression's run ends: memory is counted per
// run, time for the whole event.
func (b *budget) endRun() {
	if !b.started.IsZero() {
		b.spent += time.Since(b.started)
		b.started = time.Time{}
		b.ticks = 0
	}
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
