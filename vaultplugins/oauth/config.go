package oauth

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
)

// Client authentication methods at the token endpoint.
const (
	// AuthBasic sends the client ID and secret with HTTP Basic
	// authentication (client_secret_basic).
	AuthBasic = "basic"
	// AuthPost sends them in the form body (client_secret_post).
	AuthPost = "post"
)

// Provider is an OAuth 2.0 authorization server users connect accounts at,
// and the client writ is registered as there.
type Provider struct {
	// Name is how references and Connect name the provider, such as
	// "github": 1 to 64 of A-Z a-z 0-9 . _ -.
	Name string `json:"name"`
	// TokenURL is the provider's token endpoint.
	TokenURL string `json:"token_url"`
	// ClientID and ClientSecret identify writ's client at the provider.
	ClientID     string              `json:"client_id"`
	ClientSecret vaultplugins.Secret `json:"-"`
	// AuthMethod is AuthBasic (the default) or AuthPost.
	AuthMethod string `json:"auth_method,omitempty"`
	// Header and Format present the access token upstream, as in
	// vaultplugins.Credential. Defaults: Authorization, "Bearer {value}".
	Header string `json:"header,omitempty"`
	Format string `json:"format,omitempty"`
	// AcceptWiderScopes serves an access token whose granted scopes exceed
	// the scopes the decision named. Some providers ignore the scope
	// parameter of a refresh request (RFC 6749 §6 allows narrowing, it does
	// not require it). Default false: such a token is refused with
	// vaultplugins.ErrDenied.
	AcceptWiderScopes bool `json:"accept_wider_scopes,omitempty"`
}

// Config configures a Store.
type Config struct {
	// DataDir holds the database file oauth.db (mode 0600); it is created
	// with mode 0700 when absent.
	DataDir string
	// Key is the 32-byte AES-256 key refresh tokens are sealed with.
	Key []byte
	// Providers are the authorization servers accounts can be connected at.
	Providers []Provider
	// HTTPClient calls token endpoints. Default: a client with a 10s
	// timeout.
	HTTPClient *http.Client
	// RefreshTimeout bounds one refresh request. A refresh is not cancelled
	// when the Fetch that started it is, so a rotated refresh token is never
	// lost. Default 10s.
	RefreshTimeout time.Duration
	// ExpiryMargin: an access token is served from the cache until this long
	// before it expires (at most half its lifetime). Default 1m.
	ExpiryMargin time.Duration
	// Now is the clock expiry is computed on. Default time.Now.
	Now func() time.Time
	// Logger receives refresh, rotation and revocation events, never a
	// token. Default: discard.
	Logger *slog.Logger
}

// Validate reports whether c is usable, filling no defaults.
func (c Config) Validate() error {
	if len(c.Key) != KeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(c.Key), KeySize)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: data directory is empty", vaultplugins.ErrInvalidConfig)
	}
	if c.RefreshTimeout < 0 || c.ExpiryMargin < 0 {
		return fmt.Errorf("%w: negative duration", vaultplugins.ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for _, p := range c.Providers {
		if err := checkName(p.Name); err != nil {
			return fmt.Errorf("%w: provider %q: %w", vaultplugins.ErrInvalidConfig, p.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: provider %q configured twice", vaultplugins.ErrInvalidConfig, p.Name)
		}
		seen[p.Name] = true
		u, err := url.Parse(p.TokenURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("%w: provider %q: token_url must be an absolute http(s) URL without user info", vaultplugins.ErrInvalidConfig, p.Name)
		}
		if p.ClientID == "" {
			return fmt.Errorf("%w: provider %q: client_id is empty", vaultplugins.ErrInvalidConfig, p.Name)
		}
		switch p.AuthMethod {
		case "", AuthBasic, AuthPost:
		default:
			return fmt.Errorf("%w: provider %q: auth_method %q, want %q or %q", vaultplugins.ErrInvalidConfig, p.Name, p.AuthMethod, AuthBasic, AuthPost)
		}
		if _, _, err := (vaultplugins.Credential{Value: "x", Header: p.Header, Format: p.formatOrDefault()}).Render(); err != nil {
			return fmt.Errorf("%w: provider %q: %w", vaultplugins.ErrInvalidConfig, p.Name, err)
		}
	}
	return nil
}

func (p Provider) formatOrDefault() string {
	if p.Format == "" {
		return "Bearer {value}"
	}
	return p.Format
}
