package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/redact"
	"github.com/hookrelay/hookrelay/whatif"
)

// WhatIfRequest asks what a candidate config would do differently from
// the config in force with the events stored in a window. The candidate is
// sent whole: Files holds the text of its main file (Path) and of every
// rule and action file it names, by the paths it names them with; nothing
// is read from the server's disk. ${VAR} in it is resolved with the
// server's environment, as the config in force is, but only for the
// variables the config in force names: a candidate cannot read the rest
// of the server's environment (any other is unset). Inside an expression
// it reads them only where the config in force has the same expression
// (config.LoadCandidate): a new one could turn a secret into text no mask
// finds.
type WhatIfRequest struct {
	Path  string            `json:"path"`
	Files map[string]string `json:"files"`
	Hook  string            `json:"hook,omitempty"`
	From  time.Time         `json:"from"`
	To    time.Time         `json:"to"`
	Limit int               `json:"limit,omitempty"` // default whatif.DefaultLimit
}

// maxWhatIfBody bounds a what-if request: a few config files of at most
// config.MaxFileSize each.
const maxWhatIfBody = 4 * config.MaxFileSize

// whatIf runs a candidate config over stored events and answers a
// whatif.Report. It sends nothing and stores nothing; it needs the write
// scope all the same, because the candidate is evaluated with the server's
// environment, which the config in force draws its secrets from.
func (a *API) whatIf(c *gin.Context) {
	var req WhatIfRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxWhatIfBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(c, errBadRequest(`body: want JSON {"path": "hookrelay.yaml", "files": {"hookrelay.yaml": "…"}, "from": "…", "to": "…"}`))
		return
	}
	if req.Path == "" || req.Files[req.Path] == "" {
		a.fail(c, errBadRequest("path: name the candidate's main file, and give its text in files"))
		return
	}
	if req.From.IsZero() || req.To.IsZero() || !req.From.Before(req.To) {
		a.fail(c, errBadRequest("from, to: want RFC 3339 times with from before to"))
		return
	}
	if req.Limit < 0 || req.Limit > whatif.MaxLimit {
		a.fail(c, errBadRequest("limit: want a whole number up to 100000"))
		return
	}
	files := make(map[string][]byte, len(req.Files))
	for name, text := range req.Files {
		files[name] = []byte(text)
	}
	current := a.o.Config()
	lookup := func(name string) (string, bool) {
		if a.o.LookupEnv == nil || !slices.Contains(current.EnvNames, name) {
			return "", false
		}
		return a.o.LookupEnv(name)
	}
	candidate, err := config.LoadCandidate(req.Path, files, lookup, current)
	if err != nil {
		// The errors quote the candidate's lines, which may now hold what
		// its ${VAR} resolved to.
		a.fail(c, &apiError{http.StatusBadRequest, "candidate config: " + current.Redactor().String(err.Error())})
		return
	}
	red := redact.Join(current.Redactor(), candidate.Redactor())
	rep, err := whatif.Run(c.Request.Context(), a.o.Store, current, candidate,
		whatif.Window{From: req.From, To: req.To, Hook: req.Hook, Limit: req.Limit}, red)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}
