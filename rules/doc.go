// Package rules compiles the expr-lang expressions of a hookrelay config —
// rule conditions, idempotency keys and {{ }} template interpolations — once
// at load against the typed environment Env (body, headers, query, hook,
// event), so that a misspelt name stops startup, and evaluates them against
// each event: DecodeBody turns a raw payload into the body expressions see,
// and Set.Match decides which actions an event goes to. Member access into
// the payload is nil-safe (body.data.id is nil when data is missing), so a
// condition about a field an event lacks is false rather than an error.
package rules
