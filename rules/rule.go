package rules

import (
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/store"
)

// Rule sends an event to its actions when its condition holds.
type Rule struct {
	Name    string
	When    *Program // compiled with CompileCondition
	Actions []string
}

// Set is the ordered list of rules of one hook.
type Set struct {
	Rules []Rule
}

// Match is one action to perform for an event, and the rule that chose it.
type Match struct {
	Rule, Action string
}

// Match evaluates every rule in order. A rule whose condition fails to
// evaluate (a field of the wrong type, say) counts as not matched and is
// reported in the error list; the other rules still run. An action named by
// several matching rules is matched once, for the first of them: an event
// must not be delivered twice to the same action.
func (s *Set) Match(env Env) ([]Match, []error) {
	_, matches, errs := s.Evaluate(env)
	return matches, errs
}

// Evaluate is Match that also names, in order, every rule whose condition
// held, including a rule all of whose actions were already taken by an
// earlier one: "which rules fired" and "which deliveries to make" are two
// different answers.
func (s *Set) Evaluate(env Env) (matched []string, matches []Match, errs []error) {
	return s.evaluate(env, nil)
}

// Trace is Evaluate that also returns the trace of every rule, in order:
// matched, not matched or failed (with the error), and the value the event
// has at each field its condition reads (see store.FieldTrace). Each
// condition runs once, as in Evaluate; a field read by several rules is
// read once.
func (s *Set) Trace(env Env) (matched []string, matches []Match, errs []error, trace []store.RuleTrace) {
	if s == nil {
		return nil, nil, nil, nil
	}
	trace = make([]store.RuleTrace, 0, len(s.Rules))
	matched, matches, errs = s.evaluate(env, &trace)
	return matched, matches, errs, trace
}

func (s *Set) evaluate(env Env, trace *[]store.RuleTrace) (matched []string, matches []Match, errs []error) {
	if s == nil {
		return nil, nil, nil
	}
	var seen map[string]bool
	var read []store.FieldTrace // the fields read so far, each once
	for _, r := range s.Rules {
		ok, err := r.Matches(env)
		if trace != nil {
			t := store.RuleTrace{Rule: r.Name, Result: store.RuleNotMatched}
			switch {
			case err != nil:
				t.Result, t.Error = store.RuleError, errors.Unwrap(err).Error()
			case ok:
				t.Result = store.RuleMatched
			}
			if r.When != nil && len(r.When.fields) > 0 {
				t.Fields = make([]store.FieldTrace, len(r.When.fields))
				for i := range r.When.fields {
					t.Fields[i], read = readOnce(&r.When.fields[i], env, read)
				}
			}
			*trace = append(*trace, t)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		matched = append(matched, r.Name)
		for _, a := range r.Actions {
			if seen[a] {
				continue
			}
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[a] = true
			matches = append(matches, Match{Rule: r.Name, Action: a})
		}
	}
	return matched, matches, errs
}

// Matches evaluates the rule's condition alone. Its error is a *RuleError.
func (r *Rule) Matches(env Env) (bool, error) {
	if r.When == nil {
		return false, &RuleError{Rule: r.Name, Err: errors.New("it has no condition")}
	}
	v, err := r.When.Run(env)
	if err != nil {
		return false, &RuleError{Rule: r.Name, Err: err}
	}
	b, ok := v.(bool)
	if !ok {
		return false, &RuleError{Rule: r.Name, Err: fmt.Errorf("condition gave %T, not a boolean", v)}
	}
	return b, nil
}

// RuleError is a rule's condition failing to evaluate, over budget
// (errors.Is ErrOverBudget) or otherwise.
type RuleError struct {
	Rule string
	Err  error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %q: %v", e.Rule, e.Err) }
func (e *RuleError) Unwrap() error { return e.Err }

// readOnce is f's trace, read from env unless an earlier rule read it.
func readOnce(f *field, env Env, read []store.FieldTrace) (store.FieldTrace, []store.FieldTrace) {
	for _, r := range read {
		if r.Field == f.src {
			r.Wanted = f.wanted
			return r, read
		}
	}
	t := f.read(env)
	return t, append(read, t)
}
