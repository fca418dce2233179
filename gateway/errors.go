package gateway

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/redact"
)

// Error is a failure with the HTTP status it maps to. Msg is what the sender
// sees; Err is the detail, for operators' logs only.
type Error struct {
	Status    int
	Msg       string
	Err       error
	Challenge string // WWW-Authenticate value sent with a 401, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

var (
	errHookNotFound = &Error{Status: http.StatusNotFound, Msg: "no such hook"}
	errMethod       = &Error{Status: http.StatusMethodNotAllowed, Msg: "method not allowed: use POST"}
)

func fail(status int, msg string, err error) *Error {
	return &Error{Status: status, Msg: msg, Err: err}
}

// writeError is the one place where errors become HTTP answers. Server-side
// failures are logged with their detail at error level, refusals at info;
// both are limited per hook and status (see RefusalLog).
func writeError(c *gin.Context, log *requestLog, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	// A catch URL's token, right or wrong, is logged as its prefix only.
	attrs := []any{"status", e.Status, "path", redact.Path(c.Request.URL.Path), "error", e.Error()}
	hook := c.GetString("hook")
	if hook != "" {
		attrs = append(attrs, "hook", hook)
	}
	if e.Status >= 500 {
		log.refused(c.Request.Context(), slog.LevelError, refusalKind{hook, e.Status}, "request failed", attrs...)
	} else {
		log.refused(c.Request.Context(), slog.LevelInfo, refusalKind{hook, e.Status}, "request refused", attrs...)
	}
	switch e.Status {
	case http.StatusMethodNotAllowed:
		c.Header("Allow", http.MethodPost)
	case http.StatusUnsupportedMediaType:
		// RFC 9110, 15.5.16: the codings a body may come in.
		c.Header("Accept-Encoding", "identity")
	}
	if e.Challenge != "" {
		c.Header("WWW-Authenticate", e.Challenge)
	}
	c.AbortWithStatusJSON(e.Status, gin.H{"error": e.Msg})
}
