package config

// The evaluation budget: how long one event's expressions may run and how
// much memory each may allocate (server.evaluation).

import (
	"time"

	"github.com/hookrelay/hookrelay/rules"
)

type rawEvaluation struct {
	Timeout scalar `yaml:"timeout"`
	Memory  scalar `yaml:"memory"`
}

// Bounds of server.evaluation: below them ordinary rules would fail, above
// them one payload could hold a core or a large share of memory.
const (
	minEvalTimeout = time.Millisecond
	maxEvalTimeout = 10 * time.Second
	minEvalMemory  = 64 << 10
	maxEvalMemory  = 1 << 30
)

// compileEvaluation compiles server.evaluation; anything it leaves out
// keeps its default.
func (l *loader) compileEvaluation(file string, s *rawServer) rules.Limits {
	lim := rules.DefaultLimits
	if s == nil || s.Evaluation == nil {
		return lim
	}
	for _, k := range emptyKeys(l.tree(file), "server", "evaluation") {
		l.errorf(file, k.at, "server.evaluation.%s is empty: give it a value or remove it", k.name)
	}
	e := s.Evaluation
	if e.Timeout.Set {
		d, err := time.ParseDuration(e.Timeout.Value)
		if err != nil || d < minEvalTimeout || d > maxEvalTimeout {
			l.errorf(file, e.Timeout.pos, "server.evaluation.timeout: want a duration from %v to %v such as 100ms, got %q", minEvalTimeout, maxEvalTimeout, e.Timeout.Value)
		} else {
			lim.Timeout = d
		}
	}
	if e.Memory.Set {
		n, err := parseSize(e.Memory.Value)
		if err != nil || n < minEvalMemory || n > maxEvalMemory {
			l.errorf(file, e.Memory.pos, "server.evaluation.memory: want a size from 64KiB to 1GiB such as 8MiB, got %q", e.Memory.Value)
		} else {
			lim.Memory = n
		}
	}
	return lim
}
