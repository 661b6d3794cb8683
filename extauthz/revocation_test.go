package extauthz_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/test/writtest"
	"github.com/writ-dev/writ/tokens"
)

// TestCheckRefusesRevokedTokens revokes a token that verified (and sits in
// the verifier's cache) on one replica: the next Check on that replica, and
// on another once it refreshed, is a 401 with evidence.
func TestCheckRefusesRevokedTokens(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, rigOptions{})
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	server := func() (*extauthz.Server, *tokens.Revocations) {
		revs, err := tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := extauthz.New(extauthz.Deps{Verifier: r.verifier, Engine: policies.NewEngine(policies.Options{}), Minter: r.minter,
			Evidence: r.records, Revocations: revs},
			extauthz.Config{Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: r.logs}, nil)), ResourceMetadata: "https://writ.test/.well-known/oauth-protected-resource"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		return srv, revs
	}
	one, revsOne := server()
	two, revsTwo := server()
	token := r.token(t, "alice", "research-bot")
	other := r.token(t, "alice", "research-bot")
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil || claims.ID == "" {
		t.Fatalf("no jti in the test token: %v", err)
	}
	check := func(srv *extauthz.Server, tok string) *authv3.CheckResponse {
		t.Helper()
		resp, err := srv.Check(ctx, writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, tok, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, srv := range []*extauthz.Server{one, two} {
		if resp := check(srv, token); resp.GetOkResponse() == nil {
			t.Fatalf("before revocation: %v", resp)
		}
	}
	r.waitCaches() // the next verification is a cache hit

	if err := revsOne.Revoke(ctx, claims.ID, "research-bot", claims.ExpiresAt.Time); err != nil {
		t.Fatal(err)
	}
	wantRevoked := func(resp *authv3.CheckResponse) {
		t.Helper()
		denied := resp.GetDeniedResponse()
		if denied == nil || denied.GetStatus().GetCode() != 401 {
			t.Fatalf("revoked token: want 401, got %v", resp)
		}
		var challenge string
		for _, h := range denied.GetHeaders() {
			if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
				challenge = h.GetHeader().GetValue()
			}
		}
		if want := `Bearer error="invalid_token", error_description="the token has been revoked"`; !strings.HasPrefix(challenge, want) {
			t.Errorf("challenge %q, want prefix %q", challenge, want)
		}
		rec := r.records.last(t)
		if rec.Outcome != "unauthenticated" || rec.Status != 401 || rec.Reason != "the token has been revoked" || rec.Token != nil {
			t.Errorf("evidence %+v", rec)
		}
	}
	wantRevoked(check(one, token))
	if resp := check(two, token); resp.GetOkResponse() == nil {
		t.Fatalf("precondition: replica two has not refreshed yet, got %v", resp)
	}
	if err := revsTwo.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantRevoked(check(two, token))
	// Another token of the same agent is unaffected.
	if resp := check(one, other); resp.GetOkResponse() == nil {
		t.Errorf("an unrevoked token was refused: %v", resp)
	}
}
