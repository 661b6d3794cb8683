package oauth

import "errors"

// Errors the oauth backend returns besides the vaultplugins sentinels, which
// it wraps as noted.
var (
	// ErrKey: the key is not 32 bytes.
	ErrKey = errors.New("oauth vault: invalid key")
	// ErrWrongKey: a stored refresh token does not open under the key the
	// backend was given.
	ErrWrongKey = errors.New("oauth vault: refresh token sealed under another key")
	// ErrInvalidRef: a reference, user or provider name is malformed. Fetch
	// wraps it in vaultplugins.ErrInvalidRequest.
	ErrInvalidRef = errors.New("oauth vault: invalid reference")
	// ErrUnknownProvider: the provider is not configured. Fetch wraps it in
	// vaultplugins.ErrInvalidRequest.
	ErrUnknownProvider = errors.New("oauth vault: unknown provider")
	// ErrInvalidScope: a scope is not an RFC 6749 scope token. Fetch wraps it
	// in vaultplugins.ErrInvalidRequest.
	ErrInvalidScope = errors.New("oauth vault: invalid scope")
	// ErrInvalidToken: a refresh token is empty or larger than
	// MaxTokenBytes.
	ErrInvalidToken = errors.New("oauth vault: invalid refresh token")
)
