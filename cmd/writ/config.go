package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/oauth"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/tokens"
)

// Config is writ's one configuration file. Every key is documented in the
// README; unknown keys are rejected with their name.
type Config struct {
	Listen ListenConfig `yaml:"listen"`
	// DataDir holds the embedded store, the signing keys and the key
	// encryption key. Default ./writ-data.
	DataDir string `yaml:"data_dir"`
	// Issuer is the iss of minted writ tokens. Default http:// + listen.api.
	Issuer string `yaml:"issuer"`
	// TrustedIssuers are the issuers whose inbound JWTs writ accepts.
	TrustedIssuers []tokens.IssuerConfig `yaml:"trusted_issuers"`
	// Policies is a directory of .rego and data files; empty means the
	// embedded default policy.
	Policies string `yaml:"policies"`
	// DecisionCacheSize bounds the decision cache (entries). Decisions of a
	// deterministic policy are cached by the exact input it reads; 0 means
	// the default (100000), a negative number switches the cache off.
	DecisionCacheSize int             `yaml:"decision_cache_size"`
	Tokens            TokensConfig    `yaml:"tokens"`
	Check             extauthz.Config `yaml:"check"`
	Vault             VaultConfig     `yaml:"vault"`
	Approvals         ApprovalsConfig `yaml:"approvals"`
	Agents            AgentsConfig    `yaml:"agents"`
	// Registration is RFC 7591 dynamic client registration of agents.
	Registration oauth.RegistrationConfig `yaml:"registration"`
	// Resources are the protected resources (RFC 9728): their identifiers
	// are the audiences of writ's endpoint tokens and the context
	// `resource` of their routes.
	Resources []oauth.Resource `yaml:"resources"`
	// TokenEndpoint shapes tokens from /token.
	TokenEndpoint oauth.TokenConfig `yaml:"token_endpoint"`
	Evidence      EvidenceConfig    `yaml:"evidence"`
	Log           LogConfig         `yaml:"log"`
}

// ListenConfig holds the listen addresses.
type ListenConfig struct {
	GRPC string              `yaml:"grpc"` // ext_authz gRPC; default 127.0.0.1:9191
	HTTP string              `yaml:"http"` // ext_authz HTTP service mode; default 127.0.0.1:9192
	API  string              `yaml:"api"`  // JWKS, /metrics, /healthz; default 127.0.0.1:8080
	TLS  *extauthz.TLSConfig `yaml:"tls"`  // optional TLS/mTLS for both ext_authz listeners
}

// TokensConfig shapes minted writ tokens.
type TokensConfig struct {
	Profile   string        `yaml:"profile"`   // access_token (default) or txn_token
	MaxTTL    time.Duration `yaml:"max_ttl"`   // cap on a token's lifetime; default 5m
	Algorithm string        `yaml:"algorithm"` // ES256 (default), RS256 or EdDSA
	// KeyReload is how often a running writ re-reads its signing keys (to
	// pick up `writ keys rotate`). Default 30s.
	KeyReload time.Duration `yaml:"key_reload"`
}

// EvidenceConfig tunes the evidence log's batching.
type EvidenceConfig struct {
	BatchSize     int           `yaml:"batch_size"`     // default 256
	FlushInterval time.Duration `yaml:"flush_interval"` // default 20ms
	MaxPending    int           `yaml:"max_pending"`    // default 100000
}

// LogConfig chooses the log level.
type LogConfig struct {
	Level string `yaml:"level"` // debug, info (default), warn, error
}

// defaultConfig is what `writ serve` runs with and no file.
func defaultConfig() Config {
	return Config{
		Listen:  ListenConfig{GRPC: "127.0.0.1:9191", HTTP: "127.0.0.1:9192", API: "127.0.0.1:8080"},
		DataDir: "./writ-data",
		Tokens:  TokensConfig{Profile: string(tokens.AccessToken), MaxTTL: 5 * time.Minute, Algorithm: "ES256", KeyReload: 30 * time.Second},
		Log:     LogConfig{Level: "info"},
	}
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type`)

// loadConfig reads the YAML file over the defaults. Unknown keys are an
// error that names the key and its line.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		return cfg, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return parseConfig(raw)
}

func parseConfig(raw []byte) (Config, error) {
	cfg := defaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is the defaults
		if m := unknownField.FindAllStringSubmatch(err.Error(), -1); m != nil {
			keys := make([]string, 0, len(m))
			for _, k := range m {
				keys = append(keys, fmt.Sprintf("%q (line %s)", k[2], k[1]))
			}
			return cfg, fmt.Errorf("config: unknown key %s", strings.Join(keys, ", "))
		}
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Validate reports the first problem, naming the key.
func (c *Config) Validate() error {
	for name, addr := range map[string]string{"listen.grpc": c.Listen.GRPC, "listen.http": c.Listen.HTTP, "listen.api": c.Listen.API} {
		if addr == "" {
			continue // a listener can be switched off, except api (checked below)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("config: %s: %q is not host:port", name, addr)
		}
	}
	if c.Listen.API == "" {
		return errors.New("config: listen.api is required (it serves the JWKS that verifies writ tokens)")
	}
	if c.Listen.GRPC == "" && c.Listen.HTTP == "" {
		return errors.New("config: at least one of listen.grpc and listen.http is required")
	}
	if err := c.Listen.TLS.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("config: data_dir is required")
	}
	if strings.HasSuffix(c.Issuer, "/") {
		// iss is compared exactly: "https://writ/" and "https://writ" are
		// different issuers to every verifier, writ's own included.
		return fmt.Errorf("config: issuer: %q must not end with /", c.Issuer)
	}
	for i, iss := range c.TrustedIssuers {
		if err := iss.Validate(); err != nil {
			return fmt.Errorf("config: trusted_issuers[%d].%w", i, err)
		}
	}
	if _, err := tokens.ParseProfile(c.Tokens.Profile); err != nil {
		return fmt.Errorf("config: tokens.profile: %w", err)
	}
	if c.Tokens.MaxTTL <= 0 || c.Tokens.MaxTTL > 24*time.Hour {
		return fmt.Errorf("config: tokens.max_ttl: %s is outside (0, 24h]", c.Tokens.MaxTTL)
	}
	switch c.Tokens.Algorithm {
	case "ES256", "RS256", "EdDSA":
	default:
		return fmt.Errorf("config: tokens.algorithm: %q is not one of ES256, RS256, EdDSA", c.Tokens.Algorithm)
	}
	if c.Tokens.KeyReload <= 0 {
		return fmt.Errorf("config: tokens.key_reload: must be positive")
	}
	if c.Evidence.BatchSize < 0 || c.Evidence.FlushInterval < 0 || c.Evidence.MaxPending < 0 {
		return errors.New("config: evidence: sizes and intervals must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if err := c.Approvals.validate(); err != nil {
		return err
	}
	if err := c.Agents.validate(); err != nil {
		return err
	}
	reg := c.Registration
	reg.Issuer = c.Issuer
	if reg.Issuer == "" {
		reg.Issuer = "http://" + c.Listen.API // serve's default
	}
	if err := reg.Validate(); err != nil {
		return fmt.Errorf("config: registration: %w", err)
	}
	if err := c.TokenEndpoint.Validate(); err != nil {
		return fmt.Errorf("config: token_endpoint: %w", err)
	}
	if err := c.Vault.validate(); err != nil {
		return err
	}
	if err := c.Check.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
