package oauth

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/tokens"
)

// Evidence keeps evidence records; *audit.Log is one.
type Evidence interface {
	Append(rec audit.Record) error
}

// Outcomes of the token endpoint's evidence records.
const (
	outcomeTokenIssued  = "token_issued"
	outcomeTokenRefused = "token_refused"
	outcomeTokenRevoked = "token_revoked"
)

// maxReason caps the reason of a refusal record, in bytes: parts of it
// (a repeated parameter's name, a grant type) come from the caller.
const maxReason = 512

// issuance is a token a grant minted: the answer to send, and what its
// evidence record tells about it.
type issuance struct {
	body   map[string]any // the RFC 6749 section 5.1 answer, token included
	minted tokens.Minted
	// req is what was minted: User, Tenant, Actors and DecisionID.
	req tokens.MintRequest
	// issuer verified the user: the subject token's issuer (token
	// exchange).
	issuer string
	// approval is the approval the token redeemed (CIBA).
	approval *audit.Approval
}

// newDecisionID is the id of a token endpoint decision: the evidence
// record's decision_id and, for issued tokens, their decision_id claim.
func newDecisionID() (string, *oauthError) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", serverError("token could not be issued")
	}
	return id.String(), nil
}

// evidenceRequest describes a request to the token endpoint for evidence.
func evidenceRequest(r *http.Request) audit.Request {
	return audit.Request{Protocol: "http", Method: r.Method, Host: r.Host, Path: r.URL.Path}
}

// recordIssued appends the evidence record of a token the endpoint is
// about to hand out. An error means the token must not be handed out.
func (t *TokenEndpoint) recordIssued(r *http.Request, c *client, grantType string, iss *issuance, start time.Time) error {
	if t.cfg.Evidence == nil {
		return nil
	}
	req := evidenceRequest(r)
	req.Resource = iss.minted.Audience
	m := iss.minted
	return t.cfg.Evidence.Append(audit.Record{
		DecisionID: iss.req.DecisionID,
		Time:       t.now(),
		User:       iss.req.User,
		Agent:      c.ID,
		Tenant:     iss.req.Tenant,
		Actors:     iss.req.Actors,
		Issuer:     iss.issuer,
		Request:    req,
		Outcome:    outcomeTokenIssued,
		Status:     http.StatusOK,
		Reason:     "grant_type " + grantType,
		Approval:   iss.approval,
		Token: &audit.Token{
			JTI:       m.JTI,
			Profile:   string(m.Profile),
			Audience:  m.Audience,
			Scopes:    m.Scopes,
			ExpiresAt: m.ExpiresAt,
			KeyID:     m.KeyID,
		},
		LatencyMicros: time.Since(start).Microseconds(),
	})
}

// recordRefused appends the evidence record of a token request refused to
// the authenticated client c. A refusal is answered whether or not its
// record is kept.
func (t *TokenEndpoint) recordRefused(r *http.Request, c *client, grantType string, e *oauthError, start time.Time) {
	if t.cfg.Evidence == nil {
		return
	}
	id, oe := newDecisionID()
	if oe != nil {
		t.log.Error("token refusal not recorded: no decision id")
		return
	}
	var b strings.Builder
	b.WriteString(e.code)
	b.WriteString(": ")
	b.WriteString(e.description)
	if grantType != "" {
		b.WriteString("; grant_type ")
		if t.grants[grantType] != nil {
			b.WriteString(grantType)
		} else {
			b.WriteString(strconv.Quote(truncate(grantType, 80)))
		}
	}
	rec := audit.Record{
		DecisionID:    id,
		Time:          t.now(),
		Request:       evidenceRequest(r),
		Agent:         c.ID,
		Tenant:        c.Tenant,
		Outcome:       outcomeTokenRefused,
		Status:        e.status,
		LatencyMicros: time.Since(start).Microseconds(),
	}
	rec.Reason = truncate(b.String(), maxReason)
	if err := t.cfg.Evidence.Append(rec); err != nil {
		t.log.Error("token refusal not recorded", "decision_id", id, "error", err)
	}
}

// recordRevoked appends the evidence record of a stored revocation of the
// writ token with claims, by client c.
func (t *TokenEndpoint) recordRevoked(r *http.Request, c *client, claims jwt.MapClaims, start time.Time) error {
	if t.cfg.Evidence == nil {
		return nil
	}
	id, oe := newDecisionID()
	if oe != nil {
		return oe
	}
	jti, _ := claims["jti"].(string)
	tok := &audit.Token{JTI: jti}
	if aud, _ := claims.GetAudience(); len(aud) > 0 {
		tok.Audience = aud[0]
	}
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		tok.ExpiresAt = exp.Time
	}
	if s, _ := claims["scope"].(string); s != "" {
		tok.Scopes = strings.Fields(s)
	}
	rec := audit.Record{
		DecisionID:    id,
		Time:          t.now(),
		Agent:         c.ID,
		Tenant:        c.Tenant,
		Actors:        actors(claims["act"]),
		Request:       evidenceRequest(r),
		Outcome:       outcomeTokenRevoked,
		Status:        http.StatusOK,
		Reason:        "revoked by the client it was issued to",
		Token:         tok,
		LatencyMicros: time.Since(start).Microseconds(),
	}
	// The token's subject is a user when it is not the client itself.
	if sub, _ := claims["sub"].(string); sub != "" && sub != c.ID {
		if cid, _ := claims["client_id"].(string); sub != cid {
			rec.User = sub
		}
	}
	if tenant, _ := claims["tenant"].(string); tenant != "" {
		rec.Tenant = tenant
	}
	return t.cfg.Evidence.Append(rec)
}
