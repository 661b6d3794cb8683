package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/local"
)

// VaultConfig configures the credential backends decisions can name.
type VaultConfig struct {
	// Local is the built-in encrypted store, served in process under the
	// backend name "local". Its key comes from WRIT_VAULT_KEY (base64 of 32
	// bytes) or the file data_dir/vault.key, created 0600 on first use.
	Local struct {
		// Disabled switches the local store off.
		Disabled bool `yaml:"disabled"`
	} `yaml:"local"`
	// Plugins are backend binaries launched through hashicorp/go-plugin.
	Plugins []VaultPlugin `yaml:"plugins"`
	// CallTimeout bounds every call to an in-process backend. Default 5s.
	CallTimeout time.Duration `yaml:"call_timeout"`
}

// VaultPlugin is one plugin backend.
type VaultPlugin struct {
	Name         string        `yaml:"name"`          // the backend name decisions use
	Path         string        `yaml:"path"`          // the plugin binary
	SHA256       string        `yaml:"sha256"`        // hex SHA-256 of the binary, checked before every start
	StartTimeout time.Duration `yaml:"start_timeout"` // default 10s
	CallTimeout  time.Duration `yaml:"call_timeout"`  // default 5s
	Env          []string      `yaml:"env"`           // the plugin's whole environment (the host's is never passed)
}

// vaultKeyEnv and vaultKeyFile locate the local store's key.
const (
	vaultKeyEnv  = "WRIT_VAULT_KEY"
	vaultKeyFile = "vault.key"
)

// localVaultKey returns the local store's key: WRIT_VAULT_KEY when set,
// else data_dir/vault.key, created when absent.
func localVaultKey(dataDir string) ([]byte, error) {
	if os.Getenv(vaultKeyEnv) != "" {
		return local.KeyFromEnv(vaultKeyEnv)
	}
	path := filepath.Join(dataDir, vaultKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("vault key: %w", err)
		}
		_, werr := f.WriteString(local.GenerateKey() + "\n")
		if cerr := f.Close(); werr != nil || cerr != nil {
			return nil, fmt.Errorf("vault key: write %s: %w", path, errors.Join(werr, cerr))
		}
	}
	return local.KeyFromFile(path)
}

func openLocalVault(ctx context.Context, dataDir string, oldKeys ...[]byte) (*local.Store, error) {
	key, err := localVaultKey(dataDir)
	if err != nil {
		return nil, err
	}
	return local.Open(ctx, local.Config{DataDir: dataDir, Key: key, OldKeys: oldKeys})
}

// newVaultHost starts the configured backends. It returns nil when none is
// configured, and the local store to close after the host.
func newVaultHost(ctx context.Context, cfg Config, logger *slog.Logger) (*vaultplugins.Host, *local.Store, error) {
	hc := vaultplugins.HostConfig{Backends: map[string]vaultplugins.Backend{}, CallTimeout: cfg.Vault.CallTimeout, Logger: logger}
	var store *local.Store
	if !cfg.Vault.Local.Disabled {
		s, err := openLocalVault(ctx, cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		store = s
		hc.Backends["local"] = s
	}
	for _, p := range cfg.Vault.Plugins {
		hc.Plugins = append(hc.Plugins, vaultplugins.PluginConfig{
			Name: p.Name, Path: p.Path, SHA256: p.SHA256, StartTimeout: p.StartTimeout, CallTimeout: p.CallTimeout, Env: p.Env,
		})
	}
	if len(hc.Backends) == 0 && len(hc.Plugins) == 0 {
		return nil, nil, nil
	}
	host, err := vaultplugins.NewHost(ctx, hc)
	if err != nil {
		if store != nil {
			store.Close(ctx)
		}
		return nil, nil, err
	}
	return host, store, nil
}

// validateVault reports the first unusable vault key.
func (c VaultConfig) validate() error {
	if c.CallTimeout < 0 {
		return errors.New("config: vault.call_timeout must not be negative")
	}
	seen := map[string]bool{"local": !c.Local.Disabled}
	for i, p := range c.Plugins {
		pc := vaultplugins.PluginConfig{Name: p.Name, Path: p.Path, SHA256: p.SHA256, StartTimeout: p.StartTimeout, CallTimeout: p.CallTimeout, Env: p.Env}
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("config: vault.plugins[%d]: %w", i, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("config: vault.plugins[%d].name: %q is already a backend", i, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// vaultCommand manages the local encrypted store: put (the value from
// stdin, never from the command line), list, delete, rotate.
func vaultCommand(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: vault takes a subcommand: put, list, delete or rotate", errUsage)
	}
	fs := newFlags("vault " + args[0])
	config := configFlags(fs)
	header := fs.String("header", "", "put: the upstream header to set (default Authorization)")
	format := fs.String("format", "", `put: how the value is presented, e.g. "Bearer {value}" (default the value itself)`)
	ttl := fs.Duration("ttl", 0, "put: the value expires after this long (default never)")
	oldKeyFile := fs.String("old-key-file", "", "rotate: the previous key, to re-seal every value under the current one")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	var old [][]byte
	if args[0] == "rotate" {
		if *oldKeyFile == "" {
			return fmt.Errorf("%w: vault rotate needs --old-key-file (the current key comes from %s or data_dir/%s)", errUsage, vaultKeyEnv, vaultKeyFile)
		}
		k, err := local.KeyFromFile(*oldKeyFile)
		if err != nil {
			return err
		}
		old = append(old, k)
	}
	store, err := openLocalVault(ctx, cfg.DataDir, old...)
	if err != nil {
		return err
	}
	defer store.Close(ctx)

	switch args[0] {
	case "put":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: vault put takes one reference; the value is read from stdin", errUsage)
		}
		value, err := readValue(stdin)
		if err != nil {
			return err
		}
		meta := local.Meta{Header: *header, Format: *format}
		if *ttl > 0 {
			meta.ExpiresAt = time.Now().Add(*ttl)
		}
		e, err := store.Put(ctx, fs.Arg(0), value, meta)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stored %s version %d\n", e.Ref, e.Version)
	case "list":
		entries, err := store.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REF\tVERSION\tHEADER\tFORMAT\tUPDATED\tEXPIRES")
		for _, e := range entries {
			exp := "never"
			if !e.ExpiresAt.IsZero() {
				exp = e.ExpiresAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", e.Ref, e.Version, orDash(e.Header), orDash(e.Format), e.UpdatedAt.UTC().Format(time.RFC3339), exp)
		}
		return tw.Flush()
	case "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: vault delete takes one reference", errUsage)
		}
		if err := store.Delete(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", fs.Arg(0))
	case "rotate":
		n, err := store.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-sealed %d values under the current key; the old key is no longer needed\n", n)
	default:
		return fmt.Errorf("%w: unknown vault subcommand %q", errUsage, args[0])
	}
	return nil
}

// readValue reads a secret from stdin, dropping one trailing newline.
func readValue(stdin io.Reader) (vaultplugins.Secret, error) {
	raw, err := io.ReadAll(io.LimitReader(bufio.NewReader(stdin), local.MaxValueBytes+2))
	if err != nil {
		return "", fmt.Errorf("read the value from stdin: %w", err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if v == "" {
		return "", errors.New("no value on stdin (pipe it in: the value never goes on the command line)")
	}
	return vaultplugins.Secret(v), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
