package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/config"
)

// reloader loads the config anew and swaps it in, on SIGHUP, on the admin
// API's request, or when a config or rule file changes on disk. A bad config
// is refused with its error and the previous one keeps serving.
type reloader struct {
	load  func() (*config.Config, error)
	apply func(*config.Config)
	log   *slog.Logger
	// observe, when set, is told whether each reload succeeded.
	observe func(ok bool)

	mu     sync.Mutex
	stamps map[string]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newReloader(cfg *config.Config, load func() (*config.Config, error), apply func(*config.Config), log *slog.Logger) *reloader {
	r := &reloader{load: load, apply: apply, log: log}
	r.stamps = stampFiles(cfg.Files)
	return r
}

func stampFiles(files []string) map[string]fileStamp {
	m := make(map[string]fileStamp, len(files))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			m[f] = fileStamp{fi.ModTime(), fi.Size()}
		} else {
			m[f] = fileStamp{}
		}
	}
	return m
}

// Reload loads and applies the config; why says what asked for it.
func (r *reloader) Reload(why string) (*config.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := r.load()
	if r.observe != nil {
		r.observe(err == nil)
	}
	if err != nil {
		r.log.Error("config reload refused; the previous config keeps serving", "trigger", why, "error", err.Error())
		return nil, err
	}
	r.apply(cfg)
	r.stamps = stampFiles(cfg.Files)
	r.log.Info("config reloaded", "trigger", why, "hooks", len(cfg.Hooks), "actions", len(cfg.Actions))
	return cfg, nil
}

// changed reports whether any file of the config in force changed on disk.
func (r *reloader) changed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := make([]string, 0, len(r.stamps))
	for f := range r.stamps {
		files = append(files, f)
	}
	now := stampFiles(files)
	for f, st := range now {
		if st != r.stamps[f] {
			r.stamps[f] = st // a refused file is not retried until it changes again
			return true
		}
	}
	return false
}

// Run reloads on each signal from hup (SIGHUP) and when files change
// (checked every interval; never when it is 0) until ctx is done.
func (r *reloader) Run(ctx context.Context, interval time.Duration, hup <-chan os.Signal) error {
	var checks <-chan time.Time
	if interval > 0 {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		checks = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_, _ = r.Reload("SIGHUP")
		case <-checks:
			if r.changed() {
				_, _ = r.Reload("file changed")
			}
		}
	}
}
