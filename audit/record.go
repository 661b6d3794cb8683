package audit

import "time"

// Record is one evidence record: everything that explains one decision, and
// never a secret. Hashes are filled in by the log when it is appended.
type Record struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time"`
	// Dev is true when the caller was verified by the local development
	// issuer (writ serve --dev).
	Dev bool `json:"dev,omitempty"`

	User              string   `json:"user,omitempty"`
	Agent             string   `json:"agent,omitempty"`
	Tenant            string   `json:"tenant,omitempty"`
	Actors            []string `json:"actors,omitempty"`
	Issuer            string   `json:"issuer,omitempty"`
	SPIFFEID          string   `json:"spiffe_id,omitempty"`
	InboundCredential string   `json:"inbound_credential,omitempty"` // "jwt", "spiffe", or "none"

	Request Request `json:"request"`

	PolicyRevision string `json:"policy_revision,omitempty"`
	// Outcome is, for a Check, "allow", "deny", "unauthenticated",
	// "approval_pending", "bad_request" or "error"; for a step of an
	// approval, "approval_<step>"; for the registry, "agent_registered",
	// "agent_updated", "agent_deleted", "agent_suspended" or
	// "agent_resumed"; for the token endpoint, "token_issued",
	// "token_refused" or "token_revoked".
	Outcome string `json:"outcome"`
	Status  int    `json:"status"` // HTTP status given to the agent
	Reason  string `json:"reason"`

	Approval   *Approval   `json:"approval,omitempty"`
	Token      *Token      `json:"token,omitempty"`
	Credential *Credential `json:"credential,omitempty"`

	LatencyMicros int64 `json:"latency_us"`
}

// Request describes the request that was decided.
type Request struct {
	Protocol        string `json:"protocol"` // "grpc" or "http" (ext_authz mode)
	Method          string `json:"method,omitempty"`
	Host            string `json:"host,omitempty"`
	Path            string `json:"path,omitempty"`
	MCPMethod       string `json:"mcp_method,omitempty"`
	MCPName         string `json:"mcp_name,omitempty"`
	ArgumentsDigest string `json:"arguments_sha256,omitempty"` // RFC 8785 canonical JSON, SHA-256, hex
	EnvoyRequestID  string `json:"envoy_request_id,omitempty"`
	Resource        string `json:"resource,omitempty"`
}

// Approval records the approval that gated the call.
type Approval struct {
	ID        string    `json:"id"`
	Approver  string    `json:"approver,omitempty"`
	Outcome   string    `json:"outcome"`
	Requested time.Time `json:"requested_at,omitzero"`
	Decided   time.Time `json:"decided_at,omitzero"`
}

// Token records the minted token, never its value.
type Token struct {
	JTI       string    `json:"jti"`
	Profile   string    `json:"profile"`
	Audience  string    `json:"audience"`
	Scopes    []string  `json:"scopes,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	KeyID     string    `json:"kid"`
	Reused    bool      `json:"reused,omitempty"`
}

// Credential records the vaulted credential injected upstream: backend,
// reference and version, never the value.
type Credential struct {
	Backend string `json:"backend"`
	Ref     string `json:"ref"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}
