package whatif

import (
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/actions"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
	"github.com/hookrelay/hookrelay/store"
)

// Planned is one delivery a config would make for an event: the action its
// rules chose and the request it would send.
type Planned struct {
	Rule, Action string
	// Request is the rendered request; nil when Err is set.
	Request *actions.Request
	// Err: the action cannot be rendered for this event, so the delivery
	// would be dead at its first attempt.
	Err error
	// Signing is how the request would be signed at send time
	// (actions.Action.Signing), "" when it is not; never a secret.
	Signing string

	action *actions.Action // the config's action, to compare secrets
}

// Render evaluates hook's rules on env as the gateway does and renders
// every matched action as the relay would, each with a budget of its own.
// Rules that fail to evaluate count as not matched, as they do at arrival.
// OAuth2 tokens, the Idempotency-Key, the User-Agent and the signature
// are added when a request is sent, not here: Signing says how it would be
// signed.
func Render(cfg *config.Config, hook *config.Hook, env rules.Env) []Planned {
	_, matches, _ := hook.Rules.Evaluate(env)
	out := make([]Planned, 0, len(matches))
	for _, m := range matches {
		p := Planned{Rule: m.Rule, Action: m.Action}
		if a, ok := cfg.Actions[m.Action]; ok {
			p.Request, p.Err = a.Render(env.Limit(cfg.Evaluation))
			p.Signing, p.action = a.Signing(), a
		} else {
			p.Err = fmt.Errorf("no action %q", m.Action)
		}
		out = append(out, p)
	}
	return out
}

// Plan is what cfg would do with a stored event: its payload decoded and
// its rules matched on its stored headers, query and body as the gateway
// would, each matched action rendered with now() answering at. An event of
// a hook cfg does not have makes no delivery; one whose payload cfg would
// refuse makes none either, and the refusal is the error.
func Plan(cfg *config.Config, ev store.Event, at time.Time) ([]Planned, error) {
	hook, ok := cfg.Hooks[ev.Hook]
	if !ok {
		return nil, nil
	}
	body, err := rules.DecodeBodyWithin(ev.Body, ev.Headers["content-type"], rules.DefaultMaxDepth, cfg.Evaluation.MaxValues())
	if err != nil {
		return nil, fmt.Errorf("the payload would be refused: %w", err)
	}
	env := rules.NewEnv(ev, body).Limit(cfg.Evaluation).At(at)
	return Render(cfg, hook, env), nil
}
