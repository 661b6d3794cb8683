package oauth

import "errors"

var (
	// ErrConfig means a configuration (CIBAConfig, DirectoryConfig,
	// TokenEndpointConfig) cannot be used as given.
	ErrConfig = errors.New("oauth: invalid configuration")
	// ErrPing means a ping notification could not be delivered.
	ErrPing = errors.New("oauth: ping notification not delivered")
)

// Error codes of CIBA Core 1.0 (sections 11 and 13), RFC 6749 section 5.2,
// RFC 8707 section 2 and RFC 9396 section 5, exactly as the specifications
// spell them.
const (
	codeInvalidRequest              = "invalid_request"
	codeInvalidScope                = "invalid_scope"
	codeInvalidClient               = "invalid_client"
	codeInvalidBindingMessage       = "invalid_binding_message"
	codeInvalidAuthorizationDetails = "invalid_authorization_details"
	codeUnsupportedGrantType        = "unsupported_grant_type"
	codeAuthorizationPending        = "authorization_pending"
	codeSlowDown                    = "slow_down"
	codeExpiredToken                = "expired_token"
	codeAccessDenied                = "access_denied"
	codeInvalidGrant                = "invalid_grant"
	codeServerError                 = "server_error"
	codeUnauthorizedClient          = "unauthorized_client"
	codeInvalidTarget               = "invalid_target"
)

// oauthError is an error response: the code, its HTTP status and a
// description that never repeats a credential.
type oauthError struct {
	status      int
	code        string
	description string
	// basic asks for a WWW-Authenticate: Basic challenge (RFC 6749
	// section 5.2, invalid_client after HTTP Basic authentication).
	basic bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(code, description string) *oauthError {
	return &oauthError{status: 400, code: code, description: description}
}
