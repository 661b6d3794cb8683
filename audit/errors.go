package audit

import "errors"

var (
	// ErrUnavailable is returned by Append and Healthy while evidence cannot
	// be written; it wraps the last write error.
	ErrUnavailable = errors.New("audit: evidence log unavailable")
	// ErrBacklog is returned by Append when Options.MaxPending records are
	// already waiting to be written.
	ErrBacklog = errors.New("audit: evidence backlog full")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: evidence log closed")
	// ErrNotFound is returned by Find when no record has the decision id.
	ErrNotFound = errors.New("audit: no evidence record for that decision")
	// ErrDuplicateDecision means a decision id was appended twice. Decision
	// ids are unique by construction, so this is a fault in the caller; the
	// log keeps the record and stops writing until the conflict is resolved.
	ErrDuplicateDecision = errors.New("audit: duplicate decision id")
	// ErrInvalidRecord is returned by Append for a record the log cannot
	// encode: no decision id, or a time JSON cannot represent.
	ErrInvalidRecord = errors.New("audit: invalid evidence record")
	// ErrInvalidOptions is returned by Open for negative sizes or durations.
	ErrInvalidOptions = errors.New("audit: invalid options")
	// ErrRunning is returned by Run when another Run is already writing.
	ErrRunning = errors.New("audit: writer already running")
)
