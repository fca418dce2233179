// Package rules compiles the expr-lang expressions of a hookrelay config —
// rule conditions, idempotency keys and {{ }} template interpolations — once
// at load against the typed environment Env (body, headers, query, hook,
// event), so that a misspelt name stops startup, and evaluates them against
// each event: DecodeBody turns a raw payload into the body expressions see
// (DecodeBodyShaped only the part of it that a Shape, found from the
// compiled expressions, says they read), and Set.Match decides which
// actions an event goes to. Member access into
// the payload is nil-safe (body.data.id is nil when data is missing), so a
// condition about a field an event lacks is false rather than an error.
// Every run draws on its Env's budget (Env.Limit): loops and operations
// whose cost grows with the payload are charged before they run, so a run
// over its Limits fails with ErrOverBudget instead of holding a core or
// exhausting memory.
package rules
