package rules

import (
	"errors"
	"fmt"
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
	if s == nil {
		return nil, nil, nil
	}
	var seen map[string]bool
	for _, r := range s.Rules {
		ok, err := r.Matches(env)
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
