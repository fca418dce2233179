package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/rules"
)

// reply is a hook's own answer to one stored event (its response: section).
type reply struct {
	status      int
	contentType string
	body        []byte
}

// answer evaluates the hook's response: for env. It is nil when the hook has
// none, when its when: is false, or when evaluating it failed (logged): the
// sender then gets the usual 202 {id}, since the event is stored either way.
func (g *Gateway) answer(ctx context.Context, hook *config.Hook, env rules.Env) *reply {
	r := hook.Response
	if r == nil {
		return nil
	}
	if r.When != nil {
		v, err := r.When.Run(env)
		if err != nil {
			g.log.WarnContext(ctx, "response condition failed to evaluate; answering as usual", "hook", hook.Name, "event_id", env.Event.ID, "error", err)
			return nil
		}
		if ok, _ := v.(bool); !ok {
			return nil
		}
	}
	a := &reply{status: r.Status, contentType: r.ContentType}
	if r.Body != nil {
		v, err := r.Body.Run(env)
		if err == nil {
			a.body, err = replyBody(v, &a.contentType)
		}
		if err != nil {
			g.log.WarnContext(ctx, "response body failed to evaluate; answering as usual", "hook", hook.Name, "event_id", env.Event.ID, "error", err)
			return nil
		}
	}
	return a
}

// replyBody is a string as it is, as text/plain, and anything else as JSON,
// unless the hook names its own content type.
func replyBody(v any, contentType *string) ([]byte, error) {
	ct := "application/json; charset=utf-8"
	var b []byte
	if s, ok := v.(string); ok {
		ct, b = "text/plain; charset=utf-8", []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("response body is not JSON: %w", err)
		}
	}
	if *contentType == "" {
		*contentType = ct
	}
	return b, nil
}

func (a *reply) write(c *gin.Context) {
	// The body may echo what the sender sent (a challenge): no browser may
	// sniff it into a page or run anything in it.
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	if a.contentType == "" && len(a.body) == 0 {
		c.Status(a.status)
		c.Writer.WriteHeaderNow()
		return
	}
	c.Data(a.status, a.contentType, a.body)
}
