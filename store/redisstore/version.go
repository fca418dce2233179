package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisinfo"
)

// checkSetNXGet tries, on the store's probe key, what every accept asks of
// the server: SET with NX and GET in one command (the idempotency key set
// and the one it found read at once), which Redis takes since 7.0. An
// older server, or one compatible with an older one, is refused here, at
// Open, with what to do, rather than at every accept with a syntax error.
// Any other error (a read-only replica, say) tells nothing of the command,
// and is left to what meets it next.
func (s *Store) checkSetNXGet(ctx context.Context) error {
	err := s.c.Do(ctx, "set", s.k.probe(), ms(time.Now()), "nx", "get").Err()
	if err == nil || errors.Is(err, redis.Nil) || !isSyntaxError(err) {
		return nil
	}
	version := ""
	if text, ierr := s.c.Info(ctx, "server").Result(); ierr == nil {
		version = redisinfo.Fields(text)["redis_version"]
	}
	return setNXGetRefused(err, version)
}

// isSyntaxError tells whether err is the server's refusal of a command's
// options.
func isSyntaxError(err error) bool {
	return strings.Contains(err.Error(), "syntax error")
}

// setNXGetRefused is the error of a server that refused SET with NX and
// GET with err, and reports version (INFO server's redis_version; "" when
// it could not be read).
func setNXGetRefused(err error, version string) error {
	runs := "a Redis"
	if version != "" {
		runs = "Redis " + version
	}
	return fmt.Errorf("the server runs %s, which does not take SET with NX and GET in one command (%v): hookrelay needs Redis 7.0 or later, or a server compatible with it", runs, err)
}
