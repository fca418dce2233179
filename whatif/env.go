package whatif

import (
	"sync"

	"github.com/hookrelay/hookrelay/redact"
)

// EnvRecorder is an environment lookup that remembers every value it
// gives, so that what a candidate config takes from the environment is
// masked wherever the config puts it (a body field holds no secret by
// name, yet it may hold one from ${VAR}).
type EnvRecorder struct {
	lookup func(string) (string, bool)
	mu     sync.Mutex
	values []string
}

// NewEnvRecorder wraps lookup; a nil lookup finds nothing.
func NewEnvRecorder(lookup func(string) (string, bool)) *EnvRecorder {
	return &EnvRecorder{lookup: lookup}
}

// Lookup looks name up and remembers its value.
func (e *EnvRecorder) Lookup(name string) (string, bool) {
	if e.lookup == nil {
		return "", false
	}
	v, ok := e.lookup(name)
	if ok && v != "" {
		e.mu.Lock()
		e.values = append(e.values, v)
		e.mu.Unlock()
	}
	return v, ok
}

// Redactor masks every value looked up so far.
func (e *EnvRecorder) Redactor() *redact.Redactor {
	e.mu.Lock()
	defer e.mu.Unlock()
	return redact.New(e.values, nil)
}
