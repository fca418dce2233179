package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
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
		// The files the refused config read are watched too, as they are
		// now: fixing any of them tries again, and while none changes
		// nothing is tried again.
		r.stamps = stampFiles(refusedFiles(r.stamps, err))
		r.log.Error("config reload refused; the previous config keeps serving", "trigger", why, "error", err.Error())
		return nil, err
	}
	r.apply(cfg)
	r.stamps = stampFiles(cfg.Files)
	r.log.Info("config reloaded", "trigger", why, "hooks", len(cfg.Hooks), "actions", len(cfg.Actions))
	return cfg, nil
}

// refusedFiles are the files to watch after a refused load: those watched
// already and those the load's errors name. A load that fails says only
// there which files it read; a file named but not there is reported where
// it is named ("rule file rules/new.yaml: no such file or directory"), and
// watched so that making it tries again.
func refusedFiles(watched map[string]fileStamp, err error) []string {
	files := slices.Collect(maps.Keys(watched))
	var errs config.Errors
	if !errors.As(err, &errs) {
		return files
	}
	for _, e := range errs {
		files = append(files, e.File)
		for _, what := range []string{"rule file ", "action file "} {
			if rest, ok := strings.CutPrefix(e.Msg, what); ok {
				if i := strings.LastIndex(rest, ": "); i > 0 {
					files = append(files, rest[:i])
				}
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// changed reports whether any file of the config in force, or of a config
// refused since, changed on disk.
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
