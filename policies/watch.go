package policies

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads dir whenever a file under it changes, until ctx ends (then
// it returns nil). Changes are debounced (Options.Debounce) so one save, or
// a burst of them, makes one reload. Once its watches are in place Watch
// reloads once, so a change made between LoadDir and Watch is not lost.
// Each reload logs the new revision, or the error while the last good
// revision keeps serving, and calls Options.OnReload. The error returned is
// only for a watch that cannot start.
func (e *Engine) Watch(ctx context.Context, dir string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policies: watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := watchTree(w, dir); err != nil {
		return fmt.Errorf("policies: watch %s: %w", dir, err)
	}
	e.reload(ctx, dir)

	timer := time.NewTimer(e.debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := watchTree(w, ev.Name); err != nil {
						e.log.Warn("policy watch: cannot watch new folder", "dir", ev.Name, "error", err)
					}
				}
			}
			timer.Reset(e.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: reload to be sure.
			e.log.Warn("policy watch error", "dir", dir, "error", err)
			timer.Reset(e.debounce)
		case <-timer.C:
			e.reload(ctx, dir)
		}
	}
}

func (e *Engine) reload(ctx context.Context, dir string) {
	before := e.Revision()
	rev, err := e.LoadDir(ctx, dir)
	switch {
	case err != nil:
		rev = e.Revision()
		e.log.Error("policy reload failed; the last good revision keeps serving",
			"dir", dir, "revision", rev, "error", err)
	case rev != before:
		e.log.Info("policy revision loaded", "dir", dir, "revision", rev, "previous_revision", before)
	default:
		e.log.Debug("policy unchanged", "dir", dir, "revision", rev)
	}
	if e.onReload != nil {
		e.onReload(rev, err)
	}
}

// watchTree watches dir and every folder below it, skipping hidden ones as
// ReadBundle does.
func watchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		return w.Add(p)
	})
}
