package hashicorpvault

import "errors"

// Errors this backend returns. Each is joined with the vaultplugins sentinel
// a caller across the plugin boundary sees (given in brackets), so errors.Is
// works with either in process. No error string carries a token, a secret ID
// or a secret value.
var (
	// ErrInvalidRef: the reference does not follow path[#field][@version]
	// [vaultplugins.ErrInvalidRequest].
	ErrInvalidRef = errors.New("hashicorp vault: invalid reference")
	// ErrMissingField: the secret version has no non-empty string at the
	// selected field, or at a field the format names
	// [vaultplugins.ErrNotFound].
	ErrMissingField = errors.New("hashicorp vault: field missing or not a string")
	// ErrVersionDeleted: the version read was deleted or destroyed
	// [vaultplugins.ErrNotFound].
	ErrVersionDeleted = errors.New("hashicorp vault: secret version deleted or destroyed")
	// ErrExpired: the secret's custom metadata expires_at has passed
	// [vaultplugins.ErrRevoked].
	ErrExpired = errors.New("hashicorp vault: secret expired")
	// ErrInvalidMetadata: the secret's custom metadata expires_at is not RFC
	// 3339 [vaultplugins.ErrBackend].
	ErrInvalidMetadata = errors.New("hashicorp vault: invalid custom metadata")
	// ErrLogin: the AppRole login was refused [vaultplugins.ErrDenied].
	ErrLogin = errors.New("hashicorp vault: approle login refused")
)
