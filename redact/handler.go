package redact

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Handler is a slog.Handler that masks, before its inner handler sees
// them, known secrets and credential patterns in the message and in every
// attribute (inside groups, errors, LogValuers and Stringers included), and
// cuts catch-URL tokens to their prefix. The Redactor it uses can be
// swapped when the config is reloaded.
type Handler struct {
	inner slog.Handler
	r     *atomic.Pointer[Redactor]
}

// NewHandler wraps inner; SetRedactor sets the secrets it masks.
func NewHandler(inner slog.Handler) *Handler {
	return &Handler{inner: inner, r: &atomic.Pointer[Redactor]{}}
}

// SetRedactor swaps in the Redactor of the config in force, for this
// handler and every one derived from it with WithAttrs or WithGroup.
func (h *Handler) SetRedactor(r *Redactor) { h.r.Store(r) }

// Add makes the handler mask what r masks besides everything it masked
// before: at a reload, the secrets a config no longer holds stay masked in
// the log, as work in flight or a sender that still uses one may quote
// it. Calls to Add must not run concurrently.
func (h *Handler) Add(r *Redactor) { h.r.Store(Join(h.r.Load(), r)) }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	red := h.r.Load()
	out := slog.NewRecord(rec.Time, rec.Level, red.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(red.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs implements slog.Handler. The attributes are masked with the
// Redactor in force now.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := h.r.Load()
	masked := make([]slog.Attr, len(as))
	for i, a := range as {
		masked[i] = red.attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(masked), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), r: h.r}
}

func (r *Redactor) attr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if r.Name(a.Key) && a.Value.Kind() != slog.KindGroup {
		return slog.String(a.Key, Mask)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.String(a.Value.String()))
	case slog.KindGroup:
		g := a.Value.Group()
		masked := make([]slog.Attr, len(g))
		for i, ga := range g {
			masked[i] = r.attr(ga)
		}
		a.Value = slog.GroupValue(masked...)
	case slog.KindAny:
		// Errors, Stringers and anything else become their masked text:
		// an inner handler would print them in full.
		var s string
		switch v := a.Value.Any().(type) {
		case error:
			s = v.Error()
		case fmt.Stringer:
			s = v.String()
		case []byte:
			s = string(v)
		default:
			s = fmt.Sprintf("%+v", v)
		}
		a.Value = slog.StringValue(r.String(s))
	}
	return a
}
