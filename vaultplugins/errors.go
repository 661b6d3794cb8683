package vaultplugins

import "errors"

// Errors a backend returns, wrapped with %w. They cross the plugin process
// boundary as gRPC status codes and come back as these same values, so
// errors.Is works on the host. Any other error a backend returns arrives on
// the host as ErrBackend. Error strings never carry a credential value.
var (
	// ErrNotFound: the reference names no credential.
	ErrNotFound = errors.New("vaultplugins: credential not found")
	// ErrDenied: the backend refuses this user, agent, tenant or scope.
	ErrDenied = errors.New("vaultplugins: credential denied")
	// ErrRevoked: the grant behind the credential was revoked or expired and
	// cannot be renewed without the user.
	ErrRevoked = errors.New("vaultplugins: credential revoked")
	// ErrInvalidRequest: the request is malformed for this backend.
	ErrInvalidRequest = errors.New("vaultplugins: invalid request")
	// ErrUnavailable: the backend, or what it depends on, cannot answer now.
	ErrUnavailable = errors.New("vaultplugins: backend unavailable")
	// ErrUnsupported: the backend does not implement the operation.
	ErrUnsupported = errors.New("vaultplugins: operation not supported")
	// ErrBackend: the backend failed in a way none of the above describes.
	ErrBackend = errors.New("vaultplugins: backend error")
)

// Errors only the host returns.
var (
	// ErrTimeout: the backend did not answer within the call timeout.
	ErrTimeout = errors.New("vaultplugins: backend call timed out")
	// ErrResponseTooLarge: the backend's response exceeds the size cap.
	ErrResponseTooLarge = errors.New("vaultplugins: backend response too large")
	// ErrUnknownBackend: no backend of that name is configured.
	ErrUnknownBackend = errors.New("vaultplugins: unknown backend")
	// ErrChecksum: the plugin binary's SHA-256 does not match the configured
	// one; it was not started.
	ErrChecksum = errors.New("vaultplugins: plugin checksum mismatch")
	// ErrHandshake: the plugin could not be started or spoke another
	// protocol version.
	ErrHandshake = errors.New("vaultplugins: plugin handshake failed")
	// ErrInvalidConfig: a host or plugin configuration is invalid.
	ErrInvalidConfig = errors.New("vaultplugins: invalid configuration")
	// ErrInvalidCredential: a credential's header or format cannot be rendered.
	ErrInvalidCredential = errors.New("vaultplugins: invalid credential")
	// ErrClosed: the host was closed.
	ErrClosed = errors.New("vaultplugins: host closed")
)
