package oauth

import (
	"context"
	"net/http"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/agents"
)

// handleIntrospect is RFC 7662 token introspection for the client a token
// was issued to (its client_id or nearest actor): a writ token that
// verifies, has not expired, is not revoked and whose agents are not
// suspended or awaiting review is described; anything else, including
// another client's token, is {"active": false} and nothing more. A client
// that may not get tokens (suspended, awaiting review) is refused
// unauthorized_client, as at the token endpoint.
func (t *TokenEndpoint) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if e := parseForm(w, r); e != nil {
		writeError(w, e)
		return
	}
	c, e := t.dir.authenticate(r, t.audiences("/introspect"))
	if e == nil {
		e = c.refusal()
	}
	if e != nil {
		writeError(w, e)
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeError(w, badRequest(codeInvalidRequest, "token is required"))
		return
	}
	writeJSON(w, http.StatusOK, t.introspect(r.Context(), c, raw))
}

var inactive = map[string]any{"active": false}

func (t *TokenEndpoint) introspect(ctx context.Context, c *client, raw string) map[string]any {
	claims, err := t.ownClaims(ctx, raw)
	if err != nil || !issuedTo(claims, c.ID) {
		return inactive
	}
	jti, _ := claims["jti"].(string)
	if t.cfg.Revocations.Revoked(jti) || t.agentStopped(ctx, claims) {
		return inactive
	}
	out := map[string]any{"active": true, "token_type": "Bearer"}
	for _, k := range []string{"scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "act", "tenant"} {
		if v, ok := claims[k]; ok {
			out[k] = v
		}
	}
	return out
}

// agentStopped reports whether the token's agent or any actor is suspended
// or awaiting review in the registry.
func (t *TokenEndpoint) agentStopped(ctx context.Context, claims jwt.MapClaims) bool {
	if t.dir.agents == nil {
		return false
	}
	names := actors(claims["act"])
	if id, _ := claims["client_id"].(string); id != "" {
		names = append(names, id)
	}
	for _, n := range names {
		if st, known := t.dir.agents.Status(ctx, n); known && agents.Status(st) != agents.Active {
			return true
		}
	}
	return false
}
