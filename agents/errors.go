package agents

import "errors"

var (
	// ErrNotFound is an agent the registry does not hold.
	ErrNotFound = errors.New("agents: no such agent")
	// ErrExists is a registration for a client_id already registered.
	ErrExists = errors.New("agents: agent already registered")
	// ErrNoClient is an agent that has no OAuth client registration (one
	// an operator added directly).
	ErrNoClient = errors.New("agents: agent has no client registration")
	// ErrInvalid is an agent or option the registry cannot accept.
	ErrInvalid = errors.New("agents: invalid agent")
	// ErrTransition is a status change the agent's current status does not
	// allow (approving an active agent, resuming one that is not suspended).
	ErrTransition = errors.New("agents: status change not allowed")
)
