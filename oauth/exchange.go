package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/writ-dev/writ/tokens"
)

// exchange is RFC 8693 token exchange: the agent (the authenticated
// client) asks for a token to act for the subject of subject_token, a
// user's token from a trusted issuer. The answer's sub is the subject's,
// its act is {sub: agent, act: the subject token's act chain}, its scope
// never wider than the subject's, its tenant the subject's, its lifetime
// never past the subject token's exp.
//
// A subject or actor token that does not verify, is expired, is revoked,
// or that may_act, the actor rule or the depth cap refuses is answered
// invalid_request, as RFC 8693 section 2.2.2 requires.
func (t *TokenEndpoint) exchange(ctx context.Context, c *client, form url.Values) (*issuance, *oauthError) {
	subjectToken, subjectType := form.Get("subject_token"), form.Get("subject_token_type")
	actorToken, actorType := form.Get("actor_token"), form.Get("actor_token_type")
	switch {
	case subjectToken == "":
		return nil, badRequest(codeInvalidRequest, "subject_token is required")
	case subjectType == "":
		return nil, badRequest(codeInvalidRequest, "subject_token_type is required")
	case !isJWTTokenType(subjectType):
		return nil, badRequest(codeInvalidRequest, "subject_token_type must be access_token or jwt")
	case actorToken == "" && actorType != "":
		return nil, badRequest(codeInvalidRequest, "actor_token_type without actor_token")
	case actorToken != "" && actorType == "":
		return nil, badRequest(codeInvalidRequest, "actor_token_type is required with actor_token")
	case actorToken != "" && !isJWTTokenType(actorType):
		return nil, badRequest(codeInvalidRequest, "actor_token_type must be access_token or jwt")
	case form.Has("requested_token_type") && !isJWTTokenType(form.Get("requested_token_type")):
		return nil, badRequest(codeInvalidRequest, "requested_token_type must be access_token or jwt")
	}
	aud, e := t.target(form)
	if e != nil {
		return nil, e
	}
	requested, e := parseScope(form.Get("scope"))
	if e != nil {
		return nil, e
	}

	subject, e := t.inbound(ctx, subjectToken, "subject_token")
	if e != nil {
		return nil, e
	}
	var actorIssuer string
	if actorToken != "" {
		actor, e := t.inbound(ctx, actorToken, "actor_token")
		if e != nil {
			return nil, e
		}
		if sub, _ := actor.Claims["sub"].(string); sub != c.ID {
			return nil, badRequest(codeInvalidRequest, "the actor_token is not the client's own")
		}
		actorIssuer = actor.Issuer
	}
	if raw, ok := subject.Claims["may_act"]; ok && !t.mayAct(raw, c.ID, actorIssuer) {
		return nil, badRequest(codeInvalidRequest, "the subject_token's may_act does not name this agent")
	}
	// The subject is a user. An agent's own token (sub = client_id, no
	// act) would otherwise make that agent the "user" of the new token.
	sub := subject.User
	if sub == "" {
		return nil, badRequest(codeInvalidRequest, "the subject_token is an agent's own token, not a user's")
	}
	// An agent of one tenant never acts inside another's.
	if c.Tenant != "" && subject.Tenant != "" && c.Tenant != subject.Tenant {
		return nil, badRequest(codeInvalidRequest, "the subject_token's tenant is not the agent's")
	}
	chain := append([]string{c.ID}, subject.Actors...)
	if len(chain) > t.maxDepth {
		return nil, badRequest(codeInvalidRequest, "the delegation chain would be deeper than the maximum")
	}

	scopes, e := exchangeScopes(requested, subject.Scopes, c)
	if e != nil {
		return nil, e
	}
	// Never outlive the subject token.
	ttl := t.cfg.Token.TokenTTL
	left := subject.ExpiresAt.Sub(t.now()).Truncate(time.Second)
	if left < time.Second {
		return nil, badRequest(codeInvalidRequest, "the subject_token has expired")
	}
	if ttl == 0 || ttl > left {
		ttl = left
	}
	iss, e := t.mint(ctx, c, GrantTypeTokenExchange, tokens.MintRequest{
		User:     sub,
		Agent:    c.ID,
		Actors:   chain,
		Tenant:   subject.Tenant,
		Audience: aud,
		Scopes:   scopes,
		TTL:      ttl,
	})
	if e != nil {
		return nil, e
	}
	iss.body["issued_token_type"] = TokenTypeAccessToken
	iss.issuer = subject.Issuer
	return iss, nil
}

func isJWTTokenType(s string) bool { return s == TokenTypeAccessToken || s == TokenTypeJWT }

// inbound verifies a subject or actor token and refuses a revoked one.
// which names the parameter in error descriptions; the token never
// appears in them.
func (t *TokenEndpoint) inbound(ctx context.Context, raw, which string) (*tokens.Identity, *oauthError) {
	id, err := t.cfg.Verifier.Verify(ctx, raw)
	switch {
	case errors.Is(err, tokens.ErrExpired):
		return nil, badRequest(codeInvalidRequest, "the "+which+" has expired")
	case err != nil:
		return nil, badRequest(codeInvalidRequest, "the "+which+" did not verify")
	}
	if jti, _ := id.Claims["jti"].(string); t.cfg.Revocations.Revoked(jti) {
		return nil, badRequest(codeInvalidRequest, "the "+which+" has been revoked")
	}
	return id, nil
}

// mayAct checks the subject token's may_act claim (RFC 8693 section 4.4):
// an object whose sub is the agent and whose iss, when present, is the
// issuer that vouches for the agent: writ itself (client authentication)
// or the actor token's issuer.
func (t *TokenEndpoint) mayAct(raw any, agent, actorIssuer string) bool {
	obj, ok := raw.(map[string]any)
	if !ok {
		return false
	}
	if sub, _ := obj["sub"].(string); sub != agent {
		return false
	}
	iss, present := obj["iss"]
	if !present {
		return true
	}
	s, _ := iss.(string)
	return s != "" && (s == t.cfg.Issuer || s == actorIssuer)
}

// exchangeScopes is the scope of an exchanged token: what was requested,
// which must lie within the subject's scope and the agent's registered
// scope (when it registered one), or, when nothing was requested, the
// subject's scope within the agent's.
func exchangeScopes(requested, subject []string, c *client) ([]string, *oauthError) {
	if len(requested) > 0 {
		for _, s := range requested {
			if !slices.Contains(subject, s) {
				return nil, badRequest(codeInvalidScope, "scope is wider than the subject_token's")
			}
			if c.hasScope && !slices.Contains(c.Scopes, s) {
				return nil, badRequest(codeInvalidScope, "scope is wider than the client's registered scope")
			}
		}
		return requested, nil
	}
	var out []string
	for _, s := range subject {
		if tokens.IsScopeToken(s) && (!c.hasScope || slices.Contains(c.Scopes, s)) {
			out = append(out, s)
		}
	}
	return out, nil
}
