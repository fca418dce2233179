package gateway

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// The outcomes of a request to a hook, as Metrics.Event reports them.
const (
	OutcomeAccepted            = "accepted"
	OutcomeIgnored             = "ignored"
	OutcomeDuplicate           = "duplicate"
	OutcomeUnauthorized        = "unauthorized" // 401, and 403 for a sender address not allowed
	OutcomeTooLarge            = "too_large"
	OutcomeUnsupportedEncoding = "unsupported_encoding" // 415: a compressed body
	OutcomeBadPayload          = "bad_payload"
	OutcomeRateLimited         = "rate_limited"
	OutcomeStoreUnavailable    = "store_unavailable"
	OutcomeMethodNotAllowed    = "method_not_allowed"
	OutcomeError               = "error" // any other failure
)

// Outcomes lists every outcome, so that a counter can start at zero for each.
var Outcomes = []string{
	OutcomeAccepted, OutcomeIgnored, OutcomeDuplicate, OutcomeUnauthorized, OutcomeTooLarge,
	OutcomeUnsupportedEncoding, OutcomeBadPayload, OutcomeRateLimited, OutcomeStoreUnavailable, OutcomeMethodNotAllowed, OutcomeError,
}

// outcomeKey holds a stored event's outcome in the Gin context; a refusal
// is read from the status it was answered with.
const outcomeKey = "hookrelay.outcome"

// observe reports a finished request to a hook. The hook is known only once
// it was found in the config: a request naming no configured hook (or with
// a wrong token) is not an event of any hook, so it never becomes a label.
func (g *Gateway) observe(c *gin.Context, d time.Duration) {
	hook := c.GetString("hook")
	if hook == "" {
		return
	}
	outcome := c.GetString(outcomeKey)
	if outcome == "" {
		if !c.Writer.Written() && c.Writer.Status() < 400 {
			return // a panic on its way to the recovery: no answer yet
		}
		outcome = refusal(c.Writer.Status())
	}
	g.metrics.Event(hook, outcome, d)
}

// refusal names the outcome of a request refused with status.
func refusal(status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return OutcomeUnauthorized
	case http.StatusRequestEntityTooLarge:
		return OutcomeTooLarge
	case http.StatusUnsupportedMediaType:
		return OutcomeUnsupportedEncoding
	case http.StatusBadRequest:
		return OutcomeBadPayload
	case http.StatusTooManyRequests:
		return OutcomeRateLimited
	case http.StatusServiceUnavailable:
		return OutcomeStoreUnavailable
	case http.StatusMethodNotAllowed:
		return OutcomeMethodNotAllowed
	}
	return OutcomeError
}
