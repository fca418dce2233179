package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// failoverHook makes a cluster client look for the slots' masters again as
// soon as a command fails for want of one. Left alone, go-redis keeps
// sending a dead master's slots to it until its periodic reload, a minute
// later, long after a replica has taken over.
type failoverHook struct{ cc *redis.ClusterClient }

func (h failoverHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h failoverHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if masterGone(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h failoverHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		gone := masterGone(err)
		for _, cmd := range cmds {
			gone = gone || masterGone(cmd.Err())
		}
		if gone {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// masterGone reports whether err says that the node a command went to
// could not serve it as its slot's master: it could not be reached, or
// answered that the cluster is down or that it is not (or no longer) a
// master. Replies of Redis to the command itself (redis.Nil, a script's
// error) say nothing of the kind.
func masterGone(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true // the connection failed
	}
	for _, prefix := range []string{"CLUSTERDOWN", "MASTERDOWN", "READONLY", "TRYAGAIN"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}
