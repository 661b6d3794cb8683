// Package oauth is writ's OAuth face for clients that speak OpenID
// Client-Initiated Backchannel Authentication (CIBA Core 1.0): an agent
// asks, through the backchannel, for a user's approval of an action, and
// receives a writ token once the user approves it out of band.
//
// A backchannel authentication request opens an approval request in the
// approvals Store, bound to the user (login_hint), the agent (client_id),
// the scope and the SHA-256 of the RFC 8785 canonical
// authorization_details (RFC 9396). The token endpoint's CIBA grant
// answers authorization_pending, slow_down, access_denied, expired_token or
// invalid_grant until the approval can be used, then takes its single use
// and mints a token whose approval id is the auth_req_id. Poll and ping
// delivery are offered; push is not.
//
// The token endpoint (TokenEndpoint) serves client_credentials (the agent
// as itself), RFC 8693 token exchange (the agent for a user, with a nested
// act chain) and the CIBA grant on POST /token, RFC 7009 revocation on POST
// /revoke and RFC 7662 introspection on POST /introspect. One Directory
// authenticates every client (client_secret_basic or private_key_jwt, as
// registered) for every endpoint: clients the operator configured, agents
// registered through RFC 7591, and Client ID Metadata Documents.
//
//	dir, err := oauth.NewDirectory(oauth.DirectoryConfig{
//		Clients: []oauth.Client{{ID: "agent-3", JWKS: agentJWKS}},
//		Agents:  registry, DB: db,
//	})
//	ciba, err := oauth.NewCIBA(oauth.CIBAConfig{Issuer: "https://writ.example", Directory: dir},
//		approvalStore, minter, logger)
//	te, err := oauth.NewTokenEndpoint(oauth.TokenEndpointConfig{
//		Issuer: "https://writ.example", Directory: dir, Minter: minter, Verifier: verifier,
//		Keys: keyring, Revocations: revocations, Resources: []string{"https://mcp.example/mcp"}, CIBA: ciba,
//	})
//	mux := http.NewServeMux()
//	ciba.Routes(mux) // POST /bc-authorize
//	te.Routes(mux)   // POST /token, /revoke, /introspect
//	// approvals.Options{OnEvent: ciba.OnEvent} delivers ping callbacks.
//
// Registrar serves RFC 7591 dynamic client registration (POST /register,
// under an open, initial-access-token or software-statement policy) and
// RFC 7592 management of a registration (GET, PUT, DELETE
// /register/{client_id}, with the registration access token). Each
// registered client is an agent in the agents registry, active or pending
// review as configured, and each registration, update and deletion is an
// evidence record.
//
// Discovery serves RFC 8414 authorization-server metadata at
// /.well-known/oauth-authorization-server and
// /.well-known/openid-configuration, listing what writ serves and nothing
// more, and RFC 9728 protected-resource metadata for each configured
// resource at /.well-known/oauth-protected-resource/{host}{path}; the Check
// path's 401 challenges point there with resource_metadata. writ has no
// authorization-code flow: /authorize exists because MCP clients require
// the field, and refuses every request (response_types_supported is
// empty).
package oauth
