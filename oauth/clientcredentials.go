package oauth

import (
	"context"
	"net/url"
	"slices"

	"github.com/writ-dev/writ/tokens"
)

// clientCredentials is RFC 6749 section 4.4: the agent asks for a token as
// itself. sub and client_id are the agent, tenant its tenant, aud the one
// resource named (or the only one configured), scope what it asked for
// within its registered scope (all of it when it asked for none).
func (t *TokenEndpoint) clientCredentials(ctx context.Context, c *client, form url.Values) (*issuance, *oauthError) {
	aud, e := t.target(form)
	if e != nil {
		return nil, e
	}
	scopes, e := parseScope(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	if len(scopes) == 0 {
		scopes = c.Scopes
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return nil, badRequest(codeInvalidScope, "scope is wider than the client's registered scope")
		}
	}
	return t.mint(ctx, c, GrantTypeClientCredentials, tokens.MintRequest{
		Agent:    c.ID,
		Tenant:   c.Tenant,
		Audience: aud,
		Scopes:   scopes,
	})
}
