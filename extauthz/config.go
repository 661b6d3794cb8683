package extauthz

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/writ-dev/writ/tokens"
)

// Config shapes the Check pipeline. The zero value is usable: Defaults fills
// every unset field.
type Config struct {
	// MaxHeaderBytes bounds the total size of request header names and
	// values writ accepts; larger requests get 431. Default 65536 (64 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds the request body writ reads; larger bodies get
	// 413. Default 1048576 (1 MiB).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// DefaultAudience is the audience of minted writ tokens when neither the
	// decision nor the route's resource names one. Default: none; such a
	// call is then refused with a 500 ("no audience for the writ token").
	// The request's Host is never used: the agent chooses it.
	DefaultAudience string `yaml:"default_audience"`
	// ResourceMetadata is the RFC 9728 protected-resource metadata URL put in
	// the resource_metadata parameter of 401 challenges. Default: none.
	ResourceMetadata string `yaml:"resource_metadata"`
	// ResourceMetadataURLs maps a resource ID (the route's context
	// `resource`) to that resource's RFC 9728 metadata URL; a 401 for a
	// call to a listed resource names its own URL, any other the global
	// ResourceMetadata. Set from the configured resources
	// (oauth.Discovery.ResourceMetadataURLs). Default: none.
	ResourceMetadataURLs map[string]string `yaml:"-"`
	// HTTPPathPrefix is the path_prefix Envoy's HTTP service mode prepends
	// to the original path; writ strips it. Default: none.
	HTTPPathPrefix string `yaml:"http_path_prefix"`

	// CredentialCacheTTL bounds how long a fetched upstream credential is
	// reused; a credential that expires sooner is dropped 30 s (or half its
	// remaining life) before it does. Default 5m.
	CredentialCacheTTL time.Duration `yaml:"credential_cache_ttl"`

	// MaxApprovalHold caps how long a Check on a route whose context sets
	// approval_hold (e.g. "5s") waits for a human before answering
	// approval_pending; keep it below Envoy's ext_authz timeout. Default 0:
	// no route holds.
	MaxApprovalHold time.Duration `yaml:"max_approval_hold"`

	// DefaultProfile is the token profile when neither the route nor the
	// decision names one (from tokens.profile).
	DefaultProfile tokens.Profile `yaml:"-"`
	// Logger receives one line per decision. Default: slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Defaults returns c with every unset field at its default.
func (c Config) Defaults() Config {
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.CredentialCacheTTL == 0 {
		c.CredentialCacheTTL = 5 * time.Minute
	}
	if c.DefaultProfile == "" {
		c.DefaultProfile = tokens.AccessToken
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	if c.MaxHeaderBytes < 0 {
		return fmt.Errorf("%w: check.max_header_bytes must not be negative", ErrConfig)
	}
	if c.MaxApprovalHold < 0 {
		return fmt.Errorf("%w: check.max_approval_hold must not be negative", ErrConfig)
	}
	if c.CredentialCacheTTL < 0 {
		return fmt.Errorf("%w: check.credential_cache_ttl must not be negative", ErrConfig)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: check.max_body_bytes must not be negative", ErrConfig)
	}
	for id, u := range c.ResourceMetadataURLs {
		if p, err := url.Parse(u); err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") {
			return fmt.Errorf("%w: resource %q: metadata URL %q is not an absolute http(s) URL", ErrConfig, id, u)
		}
	}
	if c.DefaultProfile != "" {
		if _, err := tokens.ParseProfile(string(c.DefaultProfile)); err != nil {
			return fmt.Errorf("%w: tokens.profile: %v", ErrConfig, err)
		}
	}
	return nil
}
