package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/oauth"
)

// since returns the records kept after the first n.
func (e *keptEvidence) since(n int) []audit.Record {
	return e.records()[n:]
}

// one returns the only record kept after the first n.
func (e *keptEvidence) one(t *testing.T, n int) audit.Record {
	t.Helper()
	recs := e.since(n)
	if len(recs) != 1 {
		t.Fatalf("%d evidence records, want 1: %+v", len(recs), recs)
	}
	return recs[0]
}

// evidenceEnv is an env with agents for every grant: "cc" (secret, tenant
// acme) and "cc-jwt" (private_key_jwt, tenant acme).
func evidenceEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvOpts(t, envOptions{token: oauth.TokenConfig{TokenTTL: time.Minute}})
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call", tenant: "acme"})
	e.register(agentSpec{id: "cc-jwt", jwks: jwksOf(t, &e.key.PublicKey), grants: ccGrants, scope: "tools.read tools.call", tenant: "acme"})
	return e
}

// wantClean fails when the JSON of recs contains any of sensitive, or the
// signature of any of them that is a JWT.
func wantClean(t *testing.T, recs []audit.Record, sensitive ...string) {
	t.Helper()
	raw, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sensitive {
		if s == "" {
			t.Fatalf("sensitive value %d is empty", i)
		}
		if strings.Contains(string(raw), s) {
			t.Errorf("sensitive value %d (%d bytes) in an evidence record", i, len(s))
		}
		if j := strings.LastIndexByte(s, '.'); j > 0 && strings.Contains(string(raw), s[j+1:]) {
			t.Errorf("the signature of sensitive value %d in an evidence record", i)
		}
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func TestTokenIssuedEvidence(t *testing.T) {
	e := evidenceEnv(t)
	type issued struct {
		r         response
		sensitive []string // credentials the request carried
	}
	cases := []struct {
		name     string
		request  func() issued
		grant    string
		agent    string
		tenant   string
		user     string
		actors   []string
		issuer   string
		scopes   []string
		approved bool
	}{
		{
			name: "client_credentials",
			request: func() issued {
				return issued{e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}, "scope": {"tools.read"}}), []string{ccSecret}}
			},
			grant: oauth.GrantTypeClientCredentials, agent: "cc", tenant: "acme", scopes: []string{"tools.read"},
		},
		{
			name: "token exchange",
			request: func() issued {
				subject, assertion := e.idpToken(nil), e.assertionFor("cc-jwt", e.key, nil)
				return issued{e.exchange(assertion, subject, nil), []string{subject, assertion}}
			},
			grant: oauth.GrantTypeTokenExchange, agent: "cc-jwt", tenant: "acme", user: user, actors: []string{"cc-jwt"},
			issuer: idpIssuer, scopes: []string{"tools.call", "tools.read"},
		},
		{
			name: "CIBA",
			request: func() issued {
				id := e.authorize(nil)
				if err := e.store.Approve(context.Background(), id, "user:"+user); err != nil {
					t.Fatal(err)
				}
				return issued{e.token("secret", id), []string{secret}}
			},
			grant: oauth.GrantTypeCIBA, agent: secretClient, user: user, actors: []string{secretClient},
			scopes: []string{"openid", "payments"}, approved: true,
		},
	}
	var ids []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.evidence.records())
			got := tc.request()
			if got.r.Status != http.StatusOK {
				t.Fatalf("%d %v", got.r.Status, got.r.Body)
			}
			access := got.r.str("access_token")
			claims := e.verify(access)
			rec := e.evidence.one(t, n)

			// The token carries no decision_id (the mark of a per-request
			// token, never accepted back); the record names its jti.
			if v, ok := claims["decision_id"]; ok {
				t.Errorf("endpoint token carries decision_id %v", v)
			}
			id := rec.DecisionID
			if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
				t.Errorf("decision id %q is not a UUIDv7 (%v)", id, err)
			}
			aud, _ := claims.GetAudience()
			exp, _ := claims.GetExpirationTime()
			jti, _ := claims["jti"].(string)
			want := audit.Record{
				DecisionID: id,
				Time:       e.clock.Now(),
				User:       tc.user,
				Agent:      tc.agent,
				Tenant:     tc.tenant,
				Actors:     tc.actors,
				Issuer:     tc.issuer,
				Request:    audit.Request{Protocol: "http", Method: "POST", Host: strings.TrimPrefix(e.srv.URL, "http://"), Path: "/token", Resource: aud[0]},
				Outcome:    "token_issued",
				Status:     200,
				Reason:     "grant_type " + tc.grant,
				Token: &audit.Token{
					JTI: jti, Profile: "access_token", Audience: aud[0], Scopes: tc.scopes,
					ExpiresAt: exp.Time, KeyID: kidOf(t, access),
				},
			}
			if tc.approved {
				want.Approval = &audit.Approval{ID: claims["approval_id"].(string), Approver: "user:" + user, Outcome: "approved"}
			}
			if diff := cmp.Diff(want, rec,
				cmpopts.IgnoreFields(audit.Record{}, "LatencyMicros"),
				cmpopts.IgnoreFields(audit.Approval{}, "Requested", "Decided")); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if claims["tenant"] != nil && claims["tenant"] != tc.tenant {
				t.Errorf("token tenant %v, record tenant %q", claims["tenant"], tc.tenant)
			}
			if jti == "" || rec.Token.KeyID == "" {
				t.Errorf("the token carries too little to prove the record: jti %q kid %q", jti, rec.Token.KeyID)
			}
			if a := rec.Approval; tc.approved && (a.Requested.IsZero() || a.Decided.IsZero()) {
				t.Errorf("approval times %+v", a)
			}
			wantClean(t, []audit.Record{rec}, append(got.sensitive, access)...)
			ids = append(ids, id)
		})
	}

	// Every record is in writ's hash-chained log, and the chain holds.
	if err := e.evidence.log.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if rec, _, err := audit.Find(t.Context(), e.db, id); err != nil || rec.Outcome != "token_issued" {
			t.Errorf("decision %s in the log: %+v, %v", id, rec, err)
		}
	}
	if res, err := audit.Verify(t.Context(), e.db); err != nil || !res.OK || res.Records < len(cases) {
		t.Errorf("chain: %+v, %v", res, err)
	}
}

func TestTokenRefusedEvidence(t *testing.T) {
	e := evidenceEnv(t)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	cases := []struct {
		name      string
		request   func() (response, []string)
		status    int
		agent     string
		tenant    string
		reason    string
		sensitive []string
	}{
		{
			name: "scope wider than registered",
			request: func() (response, []string) {
				return e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}, "scope": {"admin"}}), []string{ccSecret}
			},
			status: 400, agent: "cc", tenant: "acme",
			reason: "invalid_scope: scope is wider than the client's registered scope; grant_type client_credentials",
		},
		{
			name: "unsupported grant type",
			request: func() (response, []string) {
				return e.post("/token", ccAuth, url.Values{"grant_type": {"password"}, "password": {"hunter2"}}), []string{ccSecret, "hunter2"}
			},
			status: 400, agent: "cc", tenant: "acme",
			reason: `unsupported_grant_type: writ does not serve this grant_type; grant_type "password"`,
		},
		{
			name: "may_act names another agent",
			request: func() (response, []string) {
				subject := e.idpToken(func(c jwt.MapClaims) { c["may_act"] = map[string]any{"sub": "other"} })
				a := e.assertionFor("cc-jwt", e.key, nil)
				return e.exchange(a, subject, nil), []string{subject, a}
			},
			status: 400, agent: "cc-jwt", tenant: "acme",
			reason: "invalid_request: the subject_token's may_act does not name this agent; grant_type " + oauth.GrantTypeTokenExchange,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.evidence.records())
			r, sensitive := tc.request()
			if r.Status != tc.status {
				t.Fatalf("got %d %v, want %d", r.Status, r.Body, tc.status)
			}
			rec := e.evidence.one(t, n)
			if u, err := uuid.Parse(rec.DecisionID); err != nil || u.Version() != 7 {
				t.Errorf("decision id %q is not a UUIDv7 (%v)", rec.DecisionID, err)
			}
			want := audit.Record{
				DecisionID: rec.DecisionID,
				Time:       e.clock.Now(),
				Agent:      tc.agent,
				Tenant:     tc.tenant,
				Request:    audit.Request{Protocol: "http", Method: "POST", Host: host, Path: "/token"},
				Outcome:    "token_refused",
				Status:     tc.status,
				Reason:     tc.reason,
			}
			if diff := cmp.Diff(want, rec, cmpopts.IgnoreFields(audit.Record{}, "LatencyMicros")); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(rec.Reason, r.str("error")+": "+r.str("error_description")) {
				t.Errorf("reason %q does not give the answer %v", rec.Reason, r.Body)
			}
			wantClean(t, []audit.Record{rec}, sensitive...)
		})
	}

	// A client that did not authenticate names nobody: its refusal is
	// logged, not recorded, so junk requests cannot flood the evidence log.
	for name, req := range map[string]func() response{
		"wrong secret": func() response {
			return e.post("/token", "basic cc wrong-"+ccSecret, url.Values{"grant_type": {"client_credentials"}})
		},
		"assertion for an unknown client": func() response {
			return e.post("/token", e.assertionFor("ghost", e.key, nil), url.Values{"grant_type": {"client_credentials"}})
		},
		"no client authentication": func() response {
			return e.post("/token", "none", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cc"}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			n := len(e.evidence.records())
			if r := req(); r.Status != 401 || r.str("error") != "invalid_client" {
				t.Fatalf("got %d %v, want 401 invalid_client", r.Status, r.Body)
			}
			if recs := e.evidence.since(n); len(recs) != 0 {
				t.Errorf("an unauthenticated refusal was recorded: %+v", recs)
			}
		})
	}

	t.Run("a CIBA poll still waiting is not a refusal", func(t *testing.T) {
		id := e.authorize(nil)
		n := len(e.evidence.records())
		wantError(t, e.token("secret", id), 400, "authorization_pending")
		if recs := e.evidence.since(n); len(recs) != 0 {
			t.Errorf("authorization_pending recorded: %+v", recs)
		}
		// The user's denial is.
		if err := e.store.Deny(context.Background(), id, "user:"+user); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(5 * time.Second)
		wantError(t, e.token("secret", id), 400, "access_denied")
		if rec := e.evidence.one(t, n); rec.Outcome != "token_refused" || rec.Agent != secretClient ||
			rec.Reason != "access_denied: the user denied the request; grant_type "+oauth.GrantTypeCIBA {
			t.Errorf("denial record %+v", rec)
		}
	})
}

func TestTokenRevokedEvidence(t *testing.T) {
	e := evidenceEnv(t)
	host := strings.TrimPrefix(e.srv.URL, "http://")

	t.Run("client_credentials token", func(t *testing.T) {
		access := e.ccToken(ccAuth, url.Values{"scope": {"tools.read"}})
		claims := e.verify(access)
		n := len(e.evidence.records())
		if r := e.post("/revoke", ccAuth, url.Values{"token": {access}}); r.Status != 200 {
			t.Fatalf("revoke: %d %v", r.Status, r.Body)
		}
		rec := e.evidence.one(t, n)
		exp, _ := claims.GetExpirationTime()
		want := audit.Record{
			DecisionID: rec.DecisionID,
			Time:       e.clock.Now(),
			Agent:      "cc",
			Tenant:     "acme",
			Request:    audit.Request{Protocol: "http", Method: "POST", Host: host, Path: "/revoke"},
			Outcome:    "token_revoked",
			Status:     200,
			Reason:     "revoked by the client it was issued to",
			Token:      &audit.Token{JTI: claims["jti"].(string), Audience: resourceA, Scopes: []string{"tools.read"}, ExpiresAt: exp.Time},
		}
		if diff := cmp.Diff(want, rec, cmpopts.IgnoreFields(audit.Record{}, "LatencyMicros")); diff != "" {
			t.Errorf("record (-want +got):\n%s", diff)
		}
		wantClean(t, []audit.Record{rec}, access, ccSecret)

		// Revoking it again stores a revocation again, and says so.
		e.post("/revoke", ccAuth, url.Values{"token": {access}})
		if again := e.evidence.one(t, n+1); again.Token.JTI != rec.Token.JTI || again.DecisionID == rec.DecisionID {
			t.Errorf("second revocation record %+v", again)
		}
	})
	t.Run("delegated token", func(t *testing.T) {
		r := e.exchange(e.assertionFor("cc-jwt", e.key, nil), e.idpToken(nil), nil)
		if r.Status != 200 {
			t.Fatalf("exchange: %d %v", r.Status, r.Body)
		}
		access := r.str("access_token")
		n := len(e.evidence.records())
		assertion := e.assertionFor("cc-jwt", e.key, nil)
		if r := e.post("/revoke", assertion, url.Values{"token": {access}}); r.Status != 200 {
			t.Fatalf("revoke: %d %v", r.Status, r.Body)
		}
		rec := e.evidence.one(t, n)
		if rec.Outcome != "token_revoked" || rec.User != user || rec.Agent != "cc-jwt" || rec.Tenant != "acme" ||
			!cmp.Equal(rec.Actors, []string{"cc-jwt"}) || rec.Token.JTI != e.verify(access)["jti"] {
			t.Errorf("record %+v", rec)
		}
		wantClean(t, []audit.Record{rec}, access, assertion)
	})
	t.Run("nothing revoked, nothing recorded", func(t *testing.T) {
		other := e.ccToken("basic cc "+ccSecret, nil)
		n := len(e.evidence.records())
		// Another client's token, a foreign token, garbage: all 200.
		for _, tok := range []string{other, e.idpToken(nil), "not-a-token"} {
			if r := e.post("/revoke", e.assertionFor("cc-jwt", e.key, nil), url.Values{"token": {tok}}); r.Status != 200 {
				t.Fatalf("revoke: %d %v", r.Status, r.Body)
			}
		}
		if recs := e.evidence.since(n); len(recs) != 0 {
			t.Errorf("revocations that stored nothing were recorded: %+v", recs)
		}
	})
	t.Run("introspection is a read", func(t *testing.T) {
		access := e.ccToken(ccAuth, nil)
		n := len(e.evidence.records())
		if r := e.post("/introspect", ccAuth, url.Values{"token": {access}}); r.Status != 200 || r.Body["active"] != true {
			t.Fatalf("introspect: %d %v", r.Status, r.Body)
		}
		if recs := e.evidence.since(n); len(recs) != 0 {
			t.Errorf("introspection recorded: %+v", recs)
		}
	})
}

// TestTokenEvidenceFailClosed: when the evidence log refuses, no token
// leaves writ; refusals and revocations are answered as before.
func TestTokenEvidenceFailClosed(t *testing.T) {
	e := evidenceEnv(t)
	cibaID := e.authorize(nil)
	if err := e.store.Approve(context.Background(), cibaID, "user:"+user); err != nil {
		t.Fatal(err)
	}
	access := e.ccToken(ccAuth, nil) // issued before the log fails
	e.evidence.refuse(audit.ErrUnavailable)
	n := len(e.evidence.records())

	for name, request := range map[string]func() response{
		"client_credentials": func() response {
			return e.post("/token", ccAuth, url.Values{"grant_type": {"client_credentials"}, "resource": {resourceA}})
		},
		"token exchange": func() response {
			return e.exchange(e.assertionFor("cc-jwt", e.key, nil), e.idpToken(nil), nil)
		},
		"CIBA": func() response { return e.token("secret", cibaID) },
	} {
		t.Run(name, func(t *testing.T) {
			r := request()
			wantError(t, r, http.StatusServiceUnavailable, "server_error")
			if _, ok := r.Body["access_token"]; ok {
				t.Errorf("a token was handed out without its record: %v", r.Body)
			}
			if r.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After on a 503")
			}
		})
	}
	// The CIBA approval was used by the token that was not handed out:
	// the client starts over.
	e.clock.Advance(5 * time.Second)
	wantError(t, e.token("secret", cibaID), 400, "invalid_grant")
	// A refusal is still a refusal, not a 503.
	wantError(t, e.post("/token", "basic cc wrong", url.Values{"grant_type": {"client_credentials"}}), 401, "invalid_client")
	// A revocation stands without its record.
	if r := e.post("/revoke", ccAuth, url.Values{"token": {access}}); r.Status != 200 {
		t.Fatalf("revoke: %d %v", r.Status, r.Body)
	}
	if r := e.post("/introspect", ccAuth, url.Values{"token": {access}}); r.Body["active"] != false {
		t.Errorf("revoked without evidence, yet introspection says %v", r.Body)
	}
	if recs := e.evidence.since(n); len(recs) != 0 {
		t.Errorf("a refusing log kept records: %+v", recs)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "token not issued: evidence record not kept") ||
		!strings.Contains(logs, "revocation not recorded; the token stays revoked") {
		t.Errorf("the failures were not logged:\n%s", logs)
	}
}

// TestTokenEndpointWithoutEvidence: a library user without an evidence log
// still gets tokens.
func TestTokenEndpointWithoutEvidence(t *testing.T) {
	e := newEnvOpts(t, envOptions{noEvidence: true})
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read"})
	access := e.ccToken(ccAuth, nil)
	if r := e.post("/revoke", ccAuth, url.Values{"token": {access}}); r.Status != 200 {
		t.Fatalf("revoke: %d %v", r.Status, r.Body)
	}
	wantError(t, e.post("/token", "basic cc wrong", url.Values{"grant_type": {"client_credentials"}}), 401, "invalid_client")
	if recs := e.evidence.records(); len(recs) != 0 {
		t.Errorf("records without an evidence log: %+v", recs)
	}
}
