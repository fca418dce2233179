package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/hookrelay/hookrelay/store"
)

// putStateTries bounds the compare-and-set loop of a pause or resume. The
// relay writes an action's state only when its breaker moves, so losing the
// race more than a few times in a row means something is wrong.
const putStateTries = 5

// listActions shows every action of the config in force and every action
// the store still knows of (queued deliveries or a stored state) though the
// config dropped it, so that work left behind by a removed action is seen.
func (a *API) listActions(c *gin.Context) {
	ctx := c.Request.Context()
	now := a.o.Now().UTC()
	states, err := a.o.Store.ActionStates(ctx)
	if err != nil {
		a.fail(c, err)
		return
	}
	stats, err := a.o.Store.QueueStats(ctx, now)
	if err != nil {
		a.fail(c, err)
		return
	}
	cfg := a.o.Config()
	byState := make(map[string]store.ActionState, len(states))
	byStats := make(map[string]store.QueueStats, len(stats))
	names := make([]string, 0, len(cfg.Actions)+len(states)+len(stats))
	for name := range cfg.Actions {
		names = append(names, name)
	}
	for _, s := range states {
		byState[s.Action] = s
		names = append(names, s.Action)
	}
	for _, q := range stats {
		byStats[q.Action] = q
		names = append(names, q.Action)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	data := make([]ActionView, len(names))
	for i, name := range names {
		data[i] = newActionView(name, cfg.Actions[name], byState[name], byStats[name], now, cfg.Redactor())
	}
	c.JSON(http.StatusOK, gin.H{"data": data})
}

func (a *API) pauseAction(c *gin.Context)  { a.setPaused(c, true) }
func (a *API) resumeAction(c *gin.Context) { a.setPaused(c, false) }

// setPaused flips an action's pause switch in the state every process
// shares; the stores stop leasing a paused action's deliveries, so it takes
// effect on every relay without a message to any of them. Only the switch
// changes: a breaker the relay moved meanwhile is kept.
func (a *API) setPaused(c *gin.Context, paused bool) {
	ctx := c.Request.Context()
	name := c.Param("name")
	act := a.o.Config().Actions[name]
	st, changed, err := a.putPaused(ctx, name, act != nil, paused)
	if err != nil {
		a.fail(c, err)
		return
	}
	if changed {
		msg := "action resumed by operator"
		if paused {
			msg = "action paused by operator"
		}
		a.log.InfoContext(c.Request.Context(), msg, "action", name, "paused", paused)
	}
	now := a.o.Now().UTC()
	stats, err := a.o.Store.QueueStats(ctx, now)
	if err != nil {
		a.fail(c, err)
		return
	}
	var qs store.QueueStats
	if i := slices.IndexFunc(stats, func(q store.QueueStats) bool { return q.Action == name }); i >= 0 {
		qs = stats[i]
	}
	c.JSON(http.StatusOK, newActionView(name, act, st, qs, now, a.red()))
}

// putPaused stores the pause switch of action name with compare-and-set,
// reading again whenever another writer got there first. It writes nothing
// when the switch is already where it is asked to be, so pausing twice keeps
// the time of the first pause.
func (a *API) putPaused(ctx context.Context, name string, inConfig, paused bool) (st store.ActionState, changed bool, err error) {
	for range putStateTries {
		states, err := a.o.Store.ActionStates(ctx)
		if err != nil {
			return st, false, err
		}
		i := slices.IndexFunc(states, func(s store.ActionState) bool { return s.Action == name })
		switch {
		case i >= 0:
			st = states[i]
		case !inConfig:
			return st, false, errNotFound("no such action")
		default:
			st = store.ActionState{Action: name}
		}
		if st.Paused == paused {
			return st, false, nil
		}
		st.Paused = paused
		st.ChangedAt = a.o.Now().UTC()
		st, err = a.o.Store.PutActionState(ctx, st)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return st, err == nil, err
	}
	return st, false, &apiError{http.StatusConflict, "the state of action " + name + " kept changing under this request; try again"}
}
