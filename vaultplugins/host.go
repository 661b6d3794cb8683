package vaultplugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Defaults for PluginConfig and HostConfig.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultCallTimeout  = 5 * time.Second
	// DefaultBackoffBase and DefaultBackoffMax shape the restart backoff of
	// a crashed plugin: base·2^(failures-1), capped at max.
	DefaultBackoffBase = 200 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
)

// PluginConfig configures one backend plugin binary.
type PluginConfig struct {
	// Name is the backend name requests select with Request.Backend.
	Name string
	// Path is the absolute path of the plugin binary.
	Path string
	// SHA256 is the hex SHA-256 of the binary, verified before every start.
	SHA256 string
	// StartTimeout bounds the plugin's start and handshake. Default 10s.
	StartTimeout time.Duration
	// CallTimeout bounds every call to the plugin. Default 5s.
	CallTimeout time.Duration
	// Env is the plugin's whole environment, as KEY=VALUE entries. The host's
	// own environment is never passed.
	Env []string
}

// Validate reports whether c is usable, filling no defaults.
func (c PluginConfig) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: plugin name is empty", ErrInvalidConfig)
	case !filepath.IsAbs(c.Path):
		return fmt.Errorf("%w: plugin %q: path must be absolute", ErrInvalidConfig, c.Name)
	case c.StartTimeout < 0 || c.CallTimeout < 0:
		return fmt.Errorf("%w: plugin %q: negative timeout", ErrInvalidConfig, c.Name)
	}
	if sum, err := hex.DecodeString(c.SHA256); err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("%w: plugin %q: sha256 must be 64 hex digits", ErrInvalidConfig, c.Name)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%w: plugin %q: env entries must be KEY=VALUE", ErrInvalidConfig, c.Name)
		}
	}
	return nil
}

// HostConfig configures a Host.
type HostConfig struct {
	// Plugins are the plugin binaries to launch.
	Plugins []PluginConfig
	// Backends are in-process backends by name. The caller owns them: Close
	// does not close them.
	Backends map[string]Backend
	// CallTimeout bounds calls to in-process backends. Default 5s.
	CallTimeout time.Duration
	// MaxResponseBytes caps a plugin's response (credential bytes). Default
	// DefaultMaxResponseBytes.
	MaxResponseBytes int
	// Logger receives plugin lifecycle events. Default: discard.
	Logger *slog.Logger
	// Now is the clock restart backoff is measured on. Default time.Now.
	Now func() time.Time
	// Backoff is the wait before restarting a plugin after its n-th
	// consecutive failure (n ≥ 1). Default: DefaultBackoffBase doubling to
	// DefaultBackoffMax.
	Backoff func(failures int) time.Duration
}

// Host launches backend plugins and routes requests to them and to
// in-process backends. It is safe for concurrent use.
type Host struct {
	cfg      HostConfig
	plugins  map[string]*managed
	builtins map[string]Backend
	closed   atomic.Bool
}

// NewHost validates cfg and starts every plugin: checksum verified, then
// launched with automatic mTLS and only its configured environment, then
// asked to Describe itself. A plugin that fails any of these fails NewHost
// (ErrChecksum, ErrHandshake, ...), and the ones already started are
// stopped.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.CallTimeout < 0 || cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("%w: negative call timeout or response cap", ErrInvalidConfig)
	}
	h := &Host{cfg: cfg, plugins: map[string]*managed{}, builtins: map[string]Backend{}}
	for name, b := range cfg.Backends {
		if name == "" || b == nil {
			return nil, fmt.Errorf("%w: in-process backend needs a name and a value", ErrInvalidConfig)
		}
		h.builtins[name] = b
	}
	for _, pc := range cfg.Plugins {
		if err := pc.Validate(); err != nil {
			return nil, err
		}
		if _, dup := h.builtins[pc.Name]; dup || h.plugins[pc.Name] != nil {
			return nil, fmt.Errorf("%w: backend %q configured twice", ErrInvalidConfig, pc.Name)
		}
		if pc.StartTimeout == 0 {
			pc.StartTimeout = DefaultStartTimeout
		}
		if pc.CallTimeout == 0 {
			pc.CallTimeout = DefaultCallTimeout
		}
		h.plugins[pc.Name] = &managed{cfg: pc, host: h}
	}
	for _, m := range h.plugins {
		m.mu.Lock()
		err := m.start(ctx)
		m.mu.Unlock()
		if err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// Fetch routes req to the backend named req.Backend, bounded by that
// backend's call timeout. Errors wrap the sentinels in errors.go; a plugin
// that crashed is restarted on a later call once its backoff has passed, and
// until then Fetch fails fast with ErrUnavailable.
func (h *Host) Fetch(ctx context.Context, req Request) (Credential, error) {
	if h.closed.Load() {
		return Credential{}, ErrClosed
	}
	if b, ok := h.builtins[req.Backend]; ok {
		cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
		defer cancel()
		cred, err := b.Fetch(cctx, req)
		if err != nil {
			if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				err = fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			return Credential{}, fmt.Errorf("backend %q: %w", req.Backend, err)
		}
		return cred, nil
	}
	m, ok := h.plugins[req.Backend]
	if !ok {
		return Credential{}, fmt.Errorf("%w: %q", ErrUnknownBackend, req.Backend)
	}
	return m.fetch(ctx, req)
}

// Describe asks the named backend to describe itself.
func (h *Host) Describe(ctx context.Context, name string) (Description, error) {
	if h.closed.Load() {
		return Description{}, ErrClosed
	}
	if b, ok := h.builtins[name]; ok {
		cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
		defer cancel()
		return b.Describe(cctx)
	}
	m, ok := h.plugins[name]
	if !ok {
		return Description{}, fmt.Errorf("%w: %q", ErrUnknownBackend, name)
	}
	b, gen, err := m.backend(ctx)
	if err != nil {
		return Description{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	d, err := b.Describe(cctx)
	if err != nil {
		m.failed(gen, err, ctx)
		return Description{}, fmt.Errorf("backend %q: %w", name, err)
	}
	return d, nil
}

// Close stops every plugin process. Later calls fail with ErrClosed.
func (h *Host) Close() error {
	h.closed.Store(true)
	for _, m := range h.plugins {
		m.mu.Lock()
		m.closed = true
		m.stop()
		m.mu.Unlock()
	}
	return nil
}

func defaultBackoff(failures int) time.Duration {
	d := DefaultBackoffBase
	for i := 1; i < failures && d < DefaultBackoffMax; i++ {
		d *= 2
	}
	return min(d, DefaultBackoffMax)
}

// managed is one plugin process and its restart state.
type managed struct {
	cfg  PluginConfig
	host *Host

	mu       sync.Mutex
	client   *plugin.Client // nil while not running
	rpc      plugin.ClientProtocol
	impl     Backend
	gen      uint64 // incremented on every start
	failures int    // consecutive failures
	retryAt  time.Time
	closed   bool
}

func (m *managed) fetch(ctx context.Context, req Request) (Credential, error) {
	b, gen, err := m.backend(ctx)
	if err != nil {
		return Credential{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	cred, err := b.Fetch(cctx, req)
	if err != nil {
		m.failed(gen, err, ctx)
		return Credential{}, fmt.Errorf("backend %q: %w", m.cfg.Name, err)
	}
	m.succeeded(gen)
	return cred, nil
}

// backend returns the running plugin, restarting it when its backoff has
// passed.
func (m *managed) backend(ctx context.Context) (Backend, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, 0, ErrClosed
	case m.client != nil:
		return m.impl, m.gen, nil
	}
	if now := m.host.cfg.Now(); now.Before(m.retryAt) {
		return nil, 0, fmt.Errorf("%w: backend %q is restarting, next attempt in %s",
			ErrUnavailable, m.cfg.Name, m.retryAt.Sub(now).Round(time.Millisecond))
	}
	if err := m.start(ctx); err != nil {
		m.failures++
		m.retryAt = m.host.cfg.Now().Add(m.host.cfg.Backoff(m.failures))
		return nil, 0, fmt.Errorf("%w: backend %q: restart: %w", ErrUnavailable, m.cfg.Name, err)
	}
	return m.impl, m.gen, nil
}

func (m *managed) succeeded(gen uint64) {
	m.mu.Lock()
	if m.gen == gen {
		m.failures = 0
	}
	m.mu.Unlock()
}

// failed checks, after a transport failure, whether the plugin process is
// still alive, and schedules a restart when it is not.
func (m *managed) failed(gen uint64, err error, ctx context.Context) {
	if !errors.Is(err, errTransport) || ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen || m.client == nil {
		return // already handled
	}
	if !m.client.Exited() && m.rpc.Ping() == nil {
		return
	}
	m.stop()
	m.failures++
	wait := m.host.cfg.Backoff(m.failures)
	m.retryAt = m.host.cfg.Now().Add(wait)
	m.host.cfg.Logger.Warn("vault plugin stopped; restarting after backoff",
		"backend", m.cfg.Name, "failures", m.failures, "backoff", wait)
}

// start launches the plugin. m.mu is held.
func (m *managed) start(ctx context.Context) error {
	sum, _ := hex.DecodeString(m.cfg.SHA256) // validated
	cmd := exec.Command(m.cfg.Path)
	cmd.Env = append([]string{}, m.cfg.Env...)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugin.PluginSet{pluginName: &goPlugin{maxResponseBytes: m.host.cfg.MaxResponseBytes}},
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     m.cfg.StartTimeout,
		Logger:           pluginLogger(m.host.cfg.Logger, m.cfg.Name),
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fmt.Errorf("%w: backend %q (%s)", ErrChecksum, m.cfg.Name, m.cfg.Path)
		}
		return fmt.Errorf("%w: backend %q: %s", ErrHandshake, m.cfg.Name, clip(err.Error()))
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		client.Kill()
		return fmt.Errorf("%w: backend %q: %s", ErrHandshake, m.cfg.Name, clip(err.Error()))
	}
	impl := raw.(Backend)
	cctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	d, err := impl.Describe(cctx)
	if err != nil {
		client.Kill()
		return fmt.Errorf("%w: backend %q: describe: %w", ErrHandshake, m.cfg.Name, err)
	}
	m.client, m.rpc, m.impl = client, rpc, impl
	m.gen++
	m.host.cfg.Logger.Info("vault plugin started", "backend", m.cfg.Name,
		"plugin_name", d.Name, "plugin_version", d.Version, "protocol_version", client.NegotiatedVersion())
	return nil
}

// stop kills the plugin process. m.mu is held.
func (m *managed) stop() {
	if m.client == nil {
		return
	}
	m.client.Kill()
	m.client, m.rpc, m.impl = nil, nil, nil
}

// pluginLogger routes go-plugin's and the plugin's own output to logger at
// debug level.
func pluginLogger(logger *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "vault-plugin",
		Level:  hclog.Info,
		Output: slogWriter{logger: logger, backend: name},
	})
}

type slogWriter struct {
	logger  *slog.Logger
	backend string
}

func (w slogWriter) Write(p []byte) (int, error) {
	w.logger.Debug("vault plugin output", "backend", w.backend, "line", strings.TrimSpace(string(p)))
	return len(p), nil
}
