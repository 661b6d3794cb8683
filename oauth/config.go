package oauth

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Token delivery modes of CIBA Core 1.0. Push mode is not offered.
const (
	DeliveryPoll = "poll"
	DeliveryPing = "ping"
)

// GrantTypeCIBA is the CIBA grant type at the token endpoint.
const GrantTypeCIBA = "urn:openid:params:grant-type:ciba"

// Defaults for CIBAConfig.
const (
	DefaultExpiry    = 10 * time.Minute
	DefaultMaxExpiry = time.Hour
	DefaultInterval  = 5 * time.Second
	// MaxBindingMessage is the longest binding_message accepted, in bytes.
	MaxBindingMessage = 256
)

// CIBAConfig configures the CIBA endpoints.
type CIBAConfig struct {
	// Issuer is writ's issuer URL: the metadata's issuer, and the base of
	// the endpoint URLs (Issuer + /bc-authorize, /token,
	// /.well-known/jwks.json). Required.
	Issuer string
	// Clients are the CIBA clients the operator configured, when Directory
	// is nil: at least one then. With a Directory, leave it empty: the
	// directory's clients (configured, registered, metadata documents)
	// whose grant types include the CIBA grant may use CIBA.
	Clients []Client
	// Directory authenticates clients; give the token endpoint the same
	// one. When nil, NewCIBA builds one from Clients.
	Directory *Directory
	// DefaultExpiry is how long an authentication request waits for the
	// user when the client sends no requested_expiry; 10 minutes when zero.
	DefaultExpiry time.Duration
	// MaxExpiry caps requested_expiry; one hour when zero.
	MaxExpiry time.Duration
	// Interval is the minimum time between token requests for one
	// auth_req_id; 5 seconds when zero. Each slow_down adds 5 seconds.
	Interval time.Duration
	// Audience is the aud of minted access tokens; Issuer when empty.
	Audience string
	// TokenTTL is the lifetime asked of minted tokens; zero means the
	// minter's maximum.
	TokenTTL time.Duration
	// Now is the clock; time.Now when nil. It should be the approval
	// store's clock.
	Now func() time.Time
	// HTTPClient delivers ping notifications; a client with a 10 second
	// timeout when nil.
	HTTPClient *http.Client
}

// Client is a registered CIBA client: an agent that asks a user for
// approval through the backchannel.
type Client struct {
	// ID is the client_id; it becomes the agent of the approval request.
	ID string
	// SecretHash is the lowercase hex SHA-256 of the client secret, for
	// client_secret_basic. Empty disables client_secret_basic.
	SecretHash string
	// JWKS is the client's public JSON Web Key Set, for private_key_jwt
	// (RFC 7523). Empty disables private_key_jwt.
	JWKS []byte
	// DeliveryMode is "poll" (default) or "ping".
	DeliveryMode string
	// NotificationEndpoint receives ping callbacks; required in ping mode.
	// It must be https, or http on a loopback host.
	NotificationEndpoint string
	// GrantTypes are the grants the client may use at the token endpoint;
	// the CIBA grant alone when empty.
	GrantTypes []string
	// Scope is the space-separated scope the client may ask for in
	// client_credentials and token exchange; empty means none.
	Scope string
	// Tenant is the tenant of the client's tokens.
	Tenant string
}

func (c Client) validate() error {
	if c.ID == "" {
		return fmt.Errorf("%w: client without id", ErrConfig)
	}
	if c.SecretHash == "" && len(c.JWKS) == 0 {
		return fmt.Errorf("%w: client %q has neither a secret hash nor a JWKS", ErrConfig, c.ID)
	}
	if c.SecretHash != "" {
		if b, err := hex.DecodeString(c.SecretHash); err != nil || len(b) != 32 {
			return fmt.Errorf("%w: client %q secret hash is not 64 hex digits", ErrConfig, c.ID)
		}
	}
	switch c.DeliveryMode {
	case "", DeliveryPoll:
	case DeliveryPing:
		u, err := url.Parse(c.NotificationEndpoint)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
			return fmt.Errorf("%w: client %q ping mode needs an https notification endpoint", ErrConfig, c.ID)
		}
	default:
		return fmt.Errorf("%w: client %q delivery mode %q (want poll or ping)", ErrConfig, c.ID, c.DeliveryMode)
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
