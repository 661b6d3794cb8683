package oauth

import (
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// handleRevoke is RFC 7009 token revocation. The client names a token in
// token (token_type_hint is read and ignored: writ issues only access
// tokens, so every hint leads to the same search and unsupported_token_type
// never arises). A writ token that verifies, has not expired and was
// issued to this client (its client_id or nearest actor) is revoked:
// refused by the Check path, introspection and token exchange on every
// replica from the next refresh. Every other token (unknown, expired,
// foreign, another client's) gets the same empty 200 (RFC 7009 section
// 2.2), so the endpoint tells nobody which tokens exist. A suspended agent
// may still revoke its tokens.
//
// A stored revocation is an evidence record (token_revoked). When the
// record cannot be kept the revocation still stands and is answered 200:
// the token is refused either way, and the failure is logged.
func (t *TokenEndpoint) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := parseForm(w, r); e != nil {
		writeError(w, e)
		return
	}
	c, e := t.dir.authenticate(r, t.audiences("/revoke"))
	if e != nil {
		writeError(w, e)
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeError(w, badRequest(codeInvalidRequest, "token is required"))
		return
	}
	claims, err := t.ownClaims(r.Context(), raw)
	if err != nil || !issuedTo(claims, c.ID) {
		if err != nil && !errors.Is(err, jwt.ErrTokenExpired) {
			t.log.Info("revocation of a token writ does not recognise", "client_id", c.ID)
		}
		revoked(w)
		return
	}
	jti, _ := claims["jti"].(string)
	exp, _ := claims.GetExpirationTime()
	if err := t.cfg.Revocations.Revoke(r.Context(), jti, c.ID, exp.Time); err != nil {
		t.log.Error("token not revoked", "client_id", c.ID, "jti", jti, "error", err)
		// RFC 7009 section 2.2.1: the client may retry after a 503.
		w.Header().Set("Retry-After", "1")
		writeError(w, &oauthError{status: http.StatusServiceUnavailable, code: codeServerError, description: "the revocation could not be stored"})
		return
	}
	if err := t.recordRevoked(r, c, claims, start); err != nil {
		t.log.Error("revocation not recorded; the token stays revoked", "client_id", c.ID, "jti", jti, "error", err)
	}
	t.log.Info("token revoked", "client_id", c.ID, "jti", jti, "expires_at", exp.Time.Format(time.RFC3339))
	revoked(w)
}

func revoked(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}
