package policies_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/policies"
)

// TestHotSwapUnderLoad decides in parallel while revisions swap: every
// decision must come from a loaded revision and match it.
func TestHotSwapUnderLoad(t *testing.T) {
	ctx := t.Context()
	e := policies.NewEngine(policies.Options{})
	bundles := make([]policies.Bundle, 3)
	reasonOf := map[string]string{e.Revision(): "no verified identity"} // the default policy
	for i := range bundles {
		bundles[i] = policies.Bundle{Modules: map[string]string{
			"policy.rego": fmt.Sprintf("package writ.authz\ndecision := {\"allow\": true, \"reason\": %q}", fmt.Sprint("revision ", i)),
		}}
		rev, err := policies.NewEngine(policies.Options{}).LoadBundle(ctx, bundles[i])
		if err != nil {
			t.Fatal(err)
		}
		reasonOf[rev] = fmt.Sprint("revision ", i)
	}

	const workers, swaps = 8, 60
	stop := make(chan struct{})
	problems := make(chan string, workers)
	decided := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			n := 0
			defer func() { decided <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, rev, err := e.Decide(ctx, &policies.Input{})
				n++
				want, ok := reasonOf[rev]
				switch {
				case err != nil:
					problems <- fmt.Sprintf("Decide: %v", err)
					return
				case !ok:
					problems <- fmt.Sprintf("revision %q was never loaded", rev)
					return
				case d.Reason != want:
					problems <- fmt.Sprintf("revision %q decided %q, want %q", rev, d.Reason, want)
					return
				}
			}
		})
	}
	for i := range swaps {
		if _, err := e.LoadBundle(ctx, bundles[i%len(bundles)]); err != nil {
			t.Error(err)
		}
		if i%10 == 0 {
			// Failed loads in between change nothing.
			if _, err := e.LoadBundle(ctx, policies.Bundle{Modules: map[string]string{"bad.rego": "package"}}); !errors.Is(err, policies.ErrCompile) {
				t.Errorf("bad load = %v, want ErrCompile", err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(problems)
	close(decided)
	for p := range problems {
		t.Error(p)
	}
	total := 0
	for n := range decided {
		total += n
	}
	if total == 0 {
		t.Error("no decisions were made during the swaps")
	}
}

type reload struct {
	revision string
	err      error
}

// placeFile writes content beside dir and renames it in, so the watcher
// never sees a half-written file.
func placeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := t.Context()
	dir := copyDir(t, "testdata/good")
	reloads := make(chan reload, 64)
	var logs syncBuffer
	e := policies.NewEngine(policies.Options{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Debounce: 10 * time.Millisecond,
		OnReload: func(rev string, err error) { reloads <- reload{rev, err} },
	})
	defer e.Close()
	first, err := e.LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}

	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Watch(watchCtx, dir) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v, want nil when its context ends", err)
		}
	}()

	// waitFor reads reloads until one matches.
	waitFor := func(what string, match func(reload) bool) reload {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case r := <-reloads:
				if match(r) {
					return r
				}
			case err := <-done:
				t.Fatalf("Watch ended early: %v", err)
			case <-deadline:
				t.Fatalf("no reload %s", what)
			}
		}
	}

	// The watch starts with a reload of unchanged content.
	if r := waitFor("at start", func(reload) bool { return true }); r.err != nil || r.revision != first {
		t.Fatalf("first reload = %+v, want %q", r, first)
	}

	// A new policy file changes the revision.
	placeFile(t, dir, "extra.rego", "package writ.authz\n\nextra := true\n")
	second := waitFor("after a new file", func(r reload) bool { return r.err == nil && r.revision != first }).revision
	if e.Revision() != second {
		t.Errorf("Revision() = %q, want %q", e.Revision(), second)
	}

	// A data file in a new sub-folder is seen too.
	placeFile(t, dir, "tenants/globex/data.json", `{"suspended": true}`)
	third := waitFor("after a new folder", func(r reload) bool { return r.err == nil && r.revision != second }).revision
	in := delegatedCall("search_issues")
	in.Identity.Tenant = "globex"
	d, rev, err := e.Decide(ctx, in)
	if err != nil || rev != third || d.Reason != "tenant is suspended" {
		t.Errorf("Decide after the data change = %+v, %q, %v; want the suspended tenant under %q", d, rev, err, third)
	}

	// A broken file is reported and the last good revision keeps serving.
	placeFile(t, dir, "broken.rego", "package writ.authz\n\ndecision := {\n")
	r := waitFor("after a broken file", func(r reload) bool { return r.err != nil })
	if !errors.Is(r.err, policies.ErrCompile) {
		t.Errorf("reload error = %v, want ErrCompile", r.err)
	}
	if r.revision != third || e.Revision() != third {
		t.Errorf("after a broken file: reported %q, serving %q; want %q", r.revision, e.Revision(), third)
	}
	if _, rev, err := e.Decide(ctx, in); err != nil || rev != third {
		t.Errorf("Decide after a broken file = %q, %v; want %q", rev, err, third)
	}

	// The log names each new revision and the compile error.
	out := logs.String()
	for _, want := range []string{
		"revision=" + second, "revision=" + third,
		"policy reload failed", "broken.rego:4: rego_parse_error",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger on another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWatchMissingDir(t *testing.T) {
	e := policies.NewEngine(policies.Options{})
	if err := e.Watch(t.Context(), filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Watch(missing) = %v, want ErrNotExist", err)
	}
}
