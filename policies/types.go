package policies

import "time"

// Input is what a policy sees as `input`. It keeps opa-envoy-plugin's shape
// (attributes, parsed_path, parsed_query, parsed_body, truncated_body) so
// existing Envoy Rego keeps working, and adds facts writ has verified:
// identity, mcp, resource and approval. Raw, unverified claims never appear.
type Input struct {
	// Attributes is the CheckRequest's attributes as protojson renders them
	// (lowerCamelCase keys), as opa-envoy-plugin passes them.
	Attributes map[string]any
	// AttributesFunc builds Attributes on demand; the engine calls it only
	// when the policy revision can read input.attributes and Attributes is
	// nil, and at most once per Decide. It lets a caller skip rendering the
	// CheckRequest for the many policies that never look at it.
	AttributesFunc func() map[string]any
	// ParsedPath is the request path split on "/", without the query.
	ParsedPath []string
	// ParsedQuery is the query string, each key to all its values.
	ParsedQuery map[string][]string
	// ParsedBody is the JSON body when the body is JSON and complete; nil otherwise.
	ParsedBody any
	// TruncatedBody reports that Envoy sent only part of the body.
	TruncatedBody bool

	Identity *Identity // nil when no credential verified
	MCP      *MCP      // nil when the request is not MCP
	Resource *Resource // the route's context extensions
	Approval *Approval // nil unless an approval matches this exact call
}

// Identity holds verified facts about who is calling.
type Identity struct {
	User     string
	Agent    string
	Tenant   string
	Actors   []string // the actor chain, nearest actor first
	Issuer   string
	Scopes   []string
	SPIFFEID string
	Claims   map[string]any // the verified claims of the inbound token
	Dev      bool           // verified by the local development issuer
}

// MCP describes a Model Context Protocol JSON-RPC call.
type MCP struct {
	Method string
	// Name is params.name (tools/call, prompts/get) or params.uri (resources/read).
	Name      string
	Arguments map[string]any
}

// Resource is the route context Envoy passes in context_extensions.
type Resource struct {
	ID          string
	Tenant      string
	Sensitivity string
	// Extensions holds every context extension, including the ones above.
	Extensions map[string]string
}

// Approval is the approval that matches this exact call.
type Approval struct {
	ID     string
	Status string
}

// Decision is the document a policy returns at data.writ.authz.decision, or
// the translation of opa-envoy-plugin's data.envoy.authz.allow.
type Decision struct {
	Allow  bool
	Reason string
	// Scopes, Audience and TTL shape the minted token. TTL zero means the
	// configured maximum.
	Scopes   []string
	Audience string
	TTL      time.Duration
	// Profile overrides the route's token profile: "access_token" or "txn_token".
	Profile    string
	Approval   *ApprovalRequirement
	Credential *CredentialRef
	// Headers are set on the upstream request when allowed.
	Headers map[string]string
	// ResponseHeaders are set on the response to the agent (allow or deny).
	ResponseHeaders map[string]string
	// RemoveHeaders are removed from the upstream request when allowed.
	RemoveHeaders []string
	// HTTPStatus and Body customise a denial (opa-envoy-plugin's http_status
	// and body). Zero and empty mean writ's defaults.
	HTTPStatus int
	Body       string
	// DynamicMetadata is passed to Envoy as dynamic_metadata.
	DynamicMetadata map[string]any
}

// ApprovalRequirement says a human must approve before the call passes.
type ApprovalRequirement struct {
	Required       bool
	BindingMessage string
	Approvers      []string
	TTL            time.Duration
	// Uses is how many identical calls one approval lets pass; 0 means
	// once, -1 unlimited within Window.
	Uses int
	// Window, when set, is how long after approval the approval may be
	// used; otherwise it lasts until TTL runs out.
	Window time.Duration
}

// CredentialRef names a vaulted credential to inject upstream. It is a
// reference; the value never passes through policy.
type CredentialRef struct {
	Backend string
	Ref     string
	Header  string
	Format  string
}
