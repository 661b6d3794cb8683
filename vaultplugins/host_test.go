package vaultplugins_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/local"
)

// bins holds the plugin binaries TestMain builds.
var bins string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vaultplugins-bins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./testdata/testplugin", "./testdata/badplugin", "./example", "./local/cmd/writ-vault-local")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build plugins:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bins = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func pluginConfig(t *testing.T, bin, name string, env ...string) vaultplugins.PluginConfig {
	t.Helper()
	path := filepath.Join(bins, bin)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return vaultplugins.PluginConfig{Name: name, Path: path, SHA256: hex.EncodeToString(sum[:]), Env: env}
}

// clock is a settable clock for restart backoff.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newHost(t *testing.T, cfg vaultplugins.HostConfig) *vaultplugins.Host {
	t.Helper()
	h, err := vaultplugins.NewHost(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestHostRealPlugin(t *testing.T) {
	defer goleak.VerifyNone(t)
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "example", "ex", "EXAMPLE_SECRET_GITHUB=gh-s3cr3t")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "ex", Ref: "github", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	header, value, err := cred.Render()
	if err != nil || header != "Authorization" || value.Reveal() != "Bearer gh-s3cr3t" || cred.Version != "1" {
		t.Fatalf("Render = %q %q %v, version %q", header, value.Reveal(), err, cred.Version)
	}
	d, err := h.Describe(t.Context(), "ex")
	if err != nil || d.Name != "example" || d.Version != "0.1.0" {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "ex", Ref: "gitlab"}); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("missing ref: %v, want ErrNotFound", err)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "nope", Ref: "x"}); !errors.Is(err, vaultplugins.ErrUnknownBackend) {
		t.Fatalf("unknown backend: %v", err)
	}
	h.Close()
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "ex", Ref: "github"}); !errors.Is(err, vaultplugins.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

func TestHostErrorsCrossBoundary(t *testing.T) {
	defer goleak.VerifyNone(t)
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "testplugin", "tp")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		ref     string
		want    error
		message string
	}{
		{"notfound", vaultplugins.ErrNotFound, `backend "tp": vaultplugins: credential not found: "notfound"`},
		{"denied", vaultplugins.ErrDenied, `backend "tp": vaultplugins: credential denied: tenant acme: vaultplugins: credential denied`},
		{"revoked", vaultplugins.ErrRevoked, `backend "tp": vaultplugins: credential revoked`},
		{"unavailable", vaultplugins.ErrUnavailable, `backend "tp": vaultplugins: backend unavailable: upstream down`},
		{"invalid", vaultplugins.ErrInvalidRequest, `backend "tp": vaultplugins: invalid request`},
		{"plain", vaultplugins.ErrBackend, `backend "tp": vaultplugins: backend error: something broke`},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			_, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: tc.ref, Tenant: "acme"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err.Error() != tc.message {
				t.Fatalf("message = %q, want %q", err.Error(), tc.message)
			}
		})
	}
}

func TestHostEnvironmentNotPassed(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Setenv("WRIT_HOST_ONLY", "host-secret")
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "testplugin", "tp", "CONFIGURED=1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: "env"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cred.Values["CONFIGURED"]; !ok {
		t.Errorf("configured variable missing from plugin environment: %v", keys(cred.Values))
	}
	for _, leaked := range []string{"WRIT_HOST_ONLY", "PATH", "HOME"} {
		if _, ok := cred.Values[leaked]; ok {
			t.Errorf("host variable %s reached the plugin", leaked)
		}
	}
}

func keys(m map[string]vaultplugins.Secret) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestHostCrashRestart(t *testing.T) {
	defer goleak.VerifyNone(t)
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	var backoffs []int
	var mu sync.Mutex
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "testplugin", "tp")},
		Now:     clk.Now,
		Backoff: func(n int) time.Duration {
			mu.Lock()
			backoffs = append(backoffs, n)
			mu.Unlock()
			return time.Duration(n) * time.Second
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fetch := func(ref string) (vaultplugins.Credential, error) {
		return h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: ref})
	}
	before, err := fetch("a")
	if err != nil {
		t.Fatal(err)
	}

	// Traffic keeps flowing while the plugin crashes: each worker calls until
	// it has seen a success and then a fail-closed ErrUnavailable; nothing
	// else is acceptable.
	var wg sync.WaitGroup
	var ok, unavailable, other atomic.Int64
	var ready sync.WaitGroup
	for i := range 8 {
		ready.Add(1)
		wg.Go(func() {
			warmed := false
			for j := 0; ; j++ {
				_, err := fetch(fmt.Sprintf("r%d-%d", i, j))
				switch {
				case err == nil:
					ok.Add(1)
					if !warmed {
						warmed = true
						ready.Done()
					}
				case errors.Is(err, vaultplugins.ErrUnavailable) && warmed:
					unavailable.Add(1)
					return
				default:
					other.Add(1)
					if !warmed {
						ready.Done()
					}
					return
				}
			}
		})
	}
	ready.Wait()
	if _, err := fetch("crash"); !errors.Is(err, vaultplugins.ErrUnavailable) {
		t.Fatalf("crashing call: %v, want ErrUnavailable", err)
	}
	wg.Wait()
	if other.Load() != 0 || unavailable.Load() != 8 || ok.Load() < 8 {
		t.Fatalf("during crash: %d ok, %d unavailable, %d other; want >= 8, 8, 0", ok.Load(), unavailable.Load(), other.Load())
	}
	t.Logf("during crash: %d ok, %d unavailable", ok.Load(), unavailable.Load())

	// Within the backoff the host fails fast without restarting.
	if _, err := fetch("a"); !errors.Is(err, vaultplugins.ErrUnavailable) || !strings.Contains(err.Error(), "restarting") {
		t.Fatalf("within backoff: %v, want ErrUnavailable restarting", err)
	}
	clk.Add(time.Second)
	after, err := fetch("a")
	if err != nil {
		t.Fatalf("after backoff: %v", err)
	}
	if after.Version == before.Version {
		t.Fatalf("plugin pid unchanged (%s): not restarted", after.Version)
	}

	// A second crash right after a success starts the backoff over; two
	// crashes in a row double it.
	if _, err := fetch("crash"); !errors.Is(err, vaultplugins.ErrUnavailable) {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if _, err := fetch("crash"); !errors.Is(err, vaultplugins.ErrUnavailable) {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if _, err := fetch("a"); !errors.Is(err, vaultplugins.ErrUnavailable) {
		t.Fatalf("1s into a 2s backoff: %v, want ErrUnavailable", err)
	}
	clk.Add(time.Second)
	if _, err := fetch("a"); err != nil {
		t.Fatalf("after 2s backoff: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(backoffs) < 3 || backoffs[len(backoffs)-2] != 1 || backoffs[len(backoffs)-1] != 2 {
		t.Fatalf("backoff failures = %v, want ... 1, 2", backoffs)
	}
}

func TestHostHungPluginTimesOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	pc := pluginConfig(t, "testplugin", "tp")
	pc.CallTimeout = 300 * time.Millisecond
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Plugins: []vaultplugins.PluginConfig{pc}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	begin := time.Now()
	_, err = h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: "hang"})
	if !errors.Is(err, vaultplugins.ErrTimeout) {
		t.Fatalf("hung call: %v, want ErrTimeout", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("hung call took %s", d)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: "a"}); err != nil {
		t.Fatalf("call after timeout: %v", err)
	}
}

func TestHostRefusesBeforeRunning(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T, marker string) vaultplugins.PluginConfig
		want error
		ran  bool
	}{
		{"checksum mismatch", func(t *testing.T, marker string) vaultplugins.PluginConfig {
			pc := pluginConfig(t, "testplugin", "tp", "TESTPLUGIN_MARKER="+marker)
			pc.SHA256 = strings.Repeat("ab", 32)
			return pc
		}, vaultplugins.ErrChecksum, false},
		{"another binary's checksum", func(t *testing.T, marker string) vaultplugins.PluginConfig {
			pc := pluginConfig(t, "testplugin", "tp", "TESTPLUGIN_MARKER="+marker)
			pc.SHA256 = pluginConfig(t, "example", "x").SHA256
			return pc
		}, vaultplugins.ErrChecksum, false},
		{"wrong protocol version", func(t *testing.T, marker string) vaultplugins.PluginConfig {
			return pluginConfig(t, "badplugin", "bad", "TESTPLUGIN_MARKER="+marker, "BAD_MODE=version")
		}, vaultplugins.ErrHandshake, true},
		{"wrong magic cookie", func(t *testing.T, marker string) vaultplugins.PluginConfig {
			return pluginConfig(t, "badplugin", "bad", "TESTPLUGIN_MARKER="+marker)
		}, vaultplugins.ErrHandshake, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			pc := tc.cfg(t, marker)
			pc.StartTimeout = 10 * time.Second
			h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Plugins: []vaultplugins.PluginConfig{pc}})
			if !errors.Is(err, tc.want) {
				if h != nil {
					h.Close()
				}
				t.Fatalf("NewHost: %v, want %v", err, tc.want)
			}
			_, statErr := os.Stat(marker)
			if ran := statErr == nil; ran != tc.ran {
				t.Fatalf("binary ran = %v, want %v", ran, tc.ran)
			}
		})
	}
}

func TestHostOversizedResponse(t *testing.T) {
	defer goleak.VerifyNone(t)
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "testplugin", "tp")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, ref := range []string{"over", "big"} {
		cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: ref})
		if !errors.Is(err, vaultplugins.ErrResponseTooLarge) || cred.Value != "" {
			t.Fatalf("%s: value of %d bytes, err %v; want ErrResponseTooLarge", ref, len(cred.Value), err)
		}
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "tp", Ref: "a"}); err != nil {
		t.Fatalf("after oversized responses: %v", err)
	}
}

func TestHostConfigValidation(t *testing.T) {
	good := vaultplugins.PluginConfig{Name: "x", Path: "/bin/x", SHA256: strings.Repeat("00", 32)}
	for _, tc := range []struct {
		name string
		edit func(*vaultplugins.PluginConfig)
	}{
		{"no name", func(c *vaultplugins.PluginConfig) { c.Name = "" }},
		{"relative path", func(c *vaultplugins.PluginConfig) { c.Path = "bin/x" }},
		{"short sum", func(c *vaultplugins.PluginConfig) { c.SHA256 = "abcd" }},
		{"no sum", func(c *vaultplugins.PluginConfig) { c.SHA256 = "" }},
		{"bad env", func(c *vaultplugins.PluginConfig) { c.Env = []string{"NOEQUALS"} }},
		{"negative timeout", func(c *vaultplugins.PluginConfig) { c.CallTimeout = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); !errors.Is(err, vaultplugins.ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
}

// inproc is an in-process backend that blocks until released.
type inproc struct{ release chan struct{} }

func (b inproc) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	select {
	case <-b.release:
		return vaultplugins.Credential{Value: "in-process"}, nil
	case <-ctx.Done():
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrUnavailable, ctx.Err())
	}
}

func (inproc) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "inproc"}, nil
}

func TestHostInProcessBackend(t *testing.T) {
	released := make(chan struct{})
	close(released)
	h := newHost(t, vaultplugins.HostConfig{
		Backends:    map[string]vaultplugins.Backend{"fast": inproc{released}, "stuck": inproc{make(chan struct{})}},
		CallTimeout: 100 * time.Millisecond,
	})
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "fast", Ref: "x"})
	if err != nil || cred.Value.Reveal() != "in-process" {
		t.Fatalf("fast: %v %v", cred, err)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "stuck", Ref: "x"}); !errors.Is(err, vaultplugins.ErrTimeout) {
		t.Fatalf("stuck: %v, want ErrTimeout", err)
	}
}

func TestHostLogsNoSecrets(t *testing.T) {
	defer goleak.VerifyNone(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const secret = "gh-very-secret-value"
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "example", "ex", "EXAMPLE_SECRET_GITHUB="+secret)},
		Logger:  logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "ex", Ref: "github"})
	if err != nil || cred.Value.Reveal() != secret {
		t.Fatalf("Fetch: %v", err)
	}
	logger.Info("fetched", "credential", cred, "value", cred.Value)
	h.Close()
	if !strings.Contains(logs.String(), "vault plugin started") {
		t.Fatalf("expected lifecycle logs, got %s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("secret in logs: %s", logs.String())
	}
}

func TestHostLocalPlugin(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	enc := local.GenerateKey()
	k, _ := base64.StdEncoding.DecodeString(enc)
	s, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "sf/prod", "sf-token", local.Meta{Header: "X-Sf", Format: "Token {value}"}); err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{
		Plugins: []vaultplugins.PluginConfig{pluginConfig(t, "writ-vault-local", "local",
			"WRIT_VAULT_LOCAL_DATA_DIR="+dir, "WRIT_VAULT_LOCAL_KEY="+enc)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "local", Ref: "sf/prod"})
	if err != nil {
		t.Fatal(err)
	}
	if hdr, v, _ := cred.Render(); hdr != "X-Sf" || v.Reveal() != "Token sf-token" || cred.Version != "1" {
		t.Fatalf("Render = %q %q version %q", hdr, v.Reveal(), cred.Version)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "local", Ref: "missing"}); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}
