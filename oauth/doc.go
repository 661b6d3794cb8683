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
//	ciba, err := oauth.NewCIBA(oauth.CIBAConfig{
//		Issuer:  "https://writ.example",
//		Clients: []oauth.Client{{ID: "agent-3", JWKS: agentJWKS}},
//	}, approvalStore, minter, logger)
//	mux := http.NewServeMux()
//	ciba.Routes(mux) // POST /bc-authorize, POST /token, /.well-known/...
//	// approvals.Options{OnEvent: ciba.OnEvent} delivers ping callbacks.
package oauth
