package oauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/test/writtest"
	"github.com/writ-dev/writ/tokens"
	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/oauth"
)

const checkAudience = "urn:writ:test"

// pipeline is an in-process Check pipeline of real parts: the development
// issuer's tokens, the real verifier and minter, a vault host holding the
// oauth store, and a fixed decision that names the credential. Evidence is
// captured in memory.
type pipeline struct {
	srv      *extauthz.Server
	dev      *tokens.DevIssuer
	evidence *evidence
	logs     *logs
}

// newPipeline builds a Check pipeline whose decision allows, mints a
// Txn-Token and injects the oauth credential ref as "Authorization:
// Bearer {secret}".
func newPipeline(t *testing.T, backend vaultplugins.Backend, ref string, scopes []string) *pipeline {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek, err := tokens.KeyEncryptionKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tokens.OpenDevIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{checkAudience})}, tokens.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)
	minter, err := tokens.NewMinter(keyring, tokens.MinterOptions{Issuer: "https://writ.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(minter.Close)
	host, err := vaultplugins.NewHost(ctx, vaultplugins.HostConfig{Backends: map[string]vaultplugins.Backend{"oauth": backend}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	dec := policies.Decision{
		Allow: true, Profile: "txn_token", Audience: "https://api.example", Scopes: scopes,
		Credential: &policies.CredentialRef{Backend: "oauth", Ref: ref, Header: "authorization", Format: "Bearer {secret}"},
	}
	p := &pipeline{dev: dev, evidence: &evidence{}, logs: &logs{}}
	p.srv, err = extauthz.New(extauthz.Deps{
		Verifier: verifier, Engine: fixedDecision{dec}, Minter: minter, Evidence: p.evidence, Credentials: host,
	}, extauthz.Config{Logger: slog.New(slog.NewJSONHandler(p.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.srv.Close)
	return p
}

// token is a development-issuer token for user acting through agent.
func (p *pipeline) token(t *testing.T, user, agent string) string {
	t.Helper()
	tok, err := p.dev.Token(tokens.DevTokenRequest{User: user, Agent: agent, Tenant: "tenant-a", Audience: checkAudience})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

func (p *pipeline) check(ctx context.Context, inbound string) *authv3.CheckResponse {
	resp, _ := p.srv.Check(ctx, writtest.ToolCall("list_repositories", nil, inbound, nil))
	return resp // Check never returns an error
}

type fixedDecision struct{ dec policies.Decision }

func (f fixedDecision) Decide(context.Context, *policies.Input) (policies.Decision, string, error) {
	return f.dec, "sha256:fixed", nil
}

// evidence collects evidence records in memory.
type evidence struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (e *evidence) Append(rec audit.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recs = append(e.recs, rec)
	return nil
}

func (e *evidence) all() []audit.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.recs)
}

func (e *evidence) last(t *testing.T) audit.Record {
	t.Helper()
	recs := e.all()
	if len(recs) == 0 {
		t.Fatal("no evidence record")
	}
	return recs[len(recs)-1]
}

func (e *evidence) json(t *testing.T) string {
	t.Helper()
	raw, err := json.Marshal(e.all())
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// denial is the status and reason of a denied Check (0 and "" when allowed).
func denial(resp *authv3.CheckResponse) (int, string) {
	d := resp.GetDeniedResponse()
	if d == nil {
		return 0, ""
	}
	var body struct{ Reason string }
	json.Unmarshal([]byte(d.GetBody()), &body)
	return int(d.GetStatus().GetCode()), body.Reason
}

// Connect an account at a real ORY Hydra, fetch its access token through
// Check, see the refresh token rotate, revoke the grant, and see a later
// Check denied.
func TestHydraCheck(t *testing.T) {
	if os.Getenv("WRIT_SKIP_HYDRA") == "1" {
		t.Skip("WRIT_SKIP_HYDRA=1: not running the ORY Hydra test")
	}
	h := startHydra(t)
	grant := []string{"offline", "openid", "read", "write"}
	conf := h.registerClient(t, grant)
	first := h.authorize(t, conf, "alice", grant)
	if first.RefreshToken == "" {
		t.Fatal("no refresh token from the authorization-code flow")
	}

	dataDir := t.TempDir()
	key := []byte(strings.Repeat("k", oauth.KeySize))
	open := func(log *logs) *oauth.Store {
		t.Helper()
		s, err := oauth.Open(t.Context(), oauth.Config{
			DataDir: dataDir, Key: key,
			Providers: []oauth.Provider{{Name: "hydra", TokenURL: conf.Endpoint.TokenURL, ClientID: conf.ClientID, ClientSecret: vaultplugins.Secret(conf.ClientSecret)}},
			Logger:    slog.New(slog.NewJSONHandler(log, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		return s
	}
	backendLogs := &logs{}
	vault := open(backendLogs)
	ctx := t.Context()
	rt0 := vaultplugins.Secret(first.RefreshToken)
	if _, err := vault.Connect(ctx, "alice", "hydra", rt0, grant); err != nil {
		t.Fatal(err)
	}
	secrets := []vaultplugins.Secret{rt0, vaultplugins.Secret(first.AccessToken), vaultplugins.Secret(conf.ClientSecret)}

	// Hydra grants the original scopes on refresh (it does not narrow), so
	// the decision names the whole grant.
	p := newPipeline(t, vault, "hydra", grant)
	inbound := p.token(t, "alice", "research-bot")
	resp := p.check(ctx, inbound)
	if resp.GetOkResponse() == nil {
		t.Fatalf("want allow, got %v", resp)
	}
	bearer, ok := strings.CutPrefix(writtest.Header(resp, "authorization"), "Bearer ")
	if !ok || bearer == "" || bearer == inbound {
		t.Fatalf("upstream authorization = %q, want Hydra's access token", writtest.Header(resp, "authorization"))
	}
	access := vaultplugins.Secret(bearer)
	secrets = append(secrets, access)
	got := h.introspect(t, access)
	gotScopes := strings.Fields(got.Scope)
	slices.Sort(gotScopes)
	if !got.Active || got.Subject != "alice" || got.ClientID != conf.ClientID || !slices.Equal(gotScopes, grant) {
		t.Fatalf("introspection of the injected token = %+v, want active for alice with scopes %q", got, grant)
	}

	// The writ token travels in Txn-Token, for alice acting through the agent.
	txn := writtest.Header(resp, "txn-token")
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(txn, claims); err != nil {
		t.Fatalf("txn-token %q: %v", txn, err)
	}
	if claims["sub"] != "alice" {
		t.Errorf("txn-token sub = %v, want alice", claims["sub"])
	}

	// Rotation: Hydra issued a new refresh token, and the store keeps it.
	rt1, err := oauth.StoredRefreshToken(ctx, vault, "alice", "hydra")
	if err != nil {
		t.Fatal(err)
	}
	if rt1 == rt0 {
		t.Fatal("refresh token not rotated by the refresh behind Check")
	}
	secrets = append(secrets, rt1)

	rec := p.evidence.last(t)
	if c := rec.Credential; rec.Outcome != "allow" || c == nil || c.Backend != "oauth" || c.Ref != "hydra" || c.Version != "2" || c.Error != "" {
		t.Fatalf("evidence = %s / credential %+v, want allow naming oauth, hydra, version 2", rec.Outcome, rec.Credential)
	}
	if rec.Token == nil || rec.Token.Profile != "txn_token" {
		t.Errorf("evidence token = %+v, want a txn_token", rec.Token)
	}

	// A second Check reuses the cached credential: same token, no rotation.
	if again := p.check(ctx, inbound); writtest.Header(again, "authorization") != "Bearer "+bearer {
		t.Errorf("second Check: %v, want the cached access token", again)
	}
	if rt, _ := oauth.StoredRefreshToken(ctx, vault, "alice", "hydra"); rt != rt1 {
		t.Error("second Check refreshed instead of using the cached credential")
	}

	// Revoke the grant at Hydra. writ restarts on the same database: fresh
	// store, host and pipeline, so nothing is cached.
	h.revoke(t, conf, rt1)
	if h.introspect(t, access).Active {
		t.Fatal("access token still active after revoking its grant")
	}
	vault.Close(ctx)
	p2 := newPipeline(t, open(backendLogs), "hydra", grant)
	const wantReason = `credential backend "oauth": the credential's grant was revoked; reconnect the account`
	for i := range 2 { // the second is denied from the recorded revocation
		resp = p2.check(ctx, p2.token(t, "alice", "research-bot"))
		if status, reason := denial(resp); status != 403 || reason != wantReason {
			t.Fatalf("Check %d after revocation: %d %q, want 403 %q", i+1, status, reason, wantReason)
		}
		if h := writtest.Header(resp, "authorization"); h != "" {
			t.Fatalf("a denial carries authorization %q", h)
		}
		rec = p2.evidence.last(t)
		if c := rec.Credential; rec.Outcome != "deny" || rec.Status != 403 || c == nil || c.Backend != "oauth" || c.Ref != "hydra" ||
			c.Error != "the credential's grant was revoked; reconnect the account" {
			t.Fatalf("evidence after revocation = %s %d / %+v", rec.Outcome, rec.Status, rec.Credential)
		}
	}

	// No token reached evidence or logs, writ's or the backend's.
	for _, where := range []struct{ name, text string }{
		{"evidence", p.evidence.json(t) + p2.evidence.json(t)},
		{"writ logs", p.logs.String() + p2.logs.String()},
		{"backend logs", backendLogs.String()},
	} {
		for _, s := range secrets {
			if strings.Contains(where.text, s.Reveal()) {
				t.Errorf("a token reached the %s", where.name)
			}
		}
	}
}

// 1,000 concurrent Checks for 10 users make exactly one refresh per user,
// and every user's Checks carry that user's own access token.
func TestCheckConcurrentRefreshOncePerUser(t *testing.T) {
	for _, ref := range []string{"example", "users/{user}/example"} {
		t.Run(ref, func(t *testing.T) { testConcurrentRefresh(t, ref) })
	}
}

func testConcurrentRefresh(t *testing.T, ref string) {
	const users, perUser = 10, 100
	f := newFixture(t, nil)
	p := newPipeline(t, f.store, ref, []string{"repo"})
	names := make([]string, users)
	inbound := make([]string, users)
	for u := range users {
		names[u] = fmt.Sprintf("user-%02d", u)
		f.connect(t, names[u], "repo")
		inbound[u] = p.token(t, names[u], "bot")
	}

	type result struct {
		status int
		reason string
		bearer string
	}
	results := make([]result, users*perUser)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			resp := p.check(context.Background(), inbound[i%users])
			status, reason := denial(resp)
			results[i] = result{status: status, reason: reason, bearer: writtest.Header(resp, "authorization")}
		})
	}
	close(start)
	wg.Wait()

	for _, name := range names {
		if n := f.ts.count(name); n != 1 {
			t.Errorf("%s: %d refresh requests, want 1", name, n)
		}
	}
	if n := f.ts.total.Load(); n != users {
		t.Errorf("token endpoint called %d times, want %d", n, users)
	}
	f.ts.mu.Lock()
	issued := slices.Clone(f.ts.issued)
	f.ts.mu.Unlock()
	perUserToken := map[string]string{}
	for i, r := range results {
		user := names[i%users]
		if r.status != 0 {
			t.Fatalf("Check %d for %s denied: %d %q", i, user, r.status, r.reason)
		}
		token, ok := strings.CutPrefix(r.bearer, "Bearer ")
		if !ok || !strings.HasPrefix(token, "at-"+user+"-") || !slices.Contains(issued, token) {
			t.Fatalf("Check %d for %s carried authorization %q, not an access token issued to %s", i, user, r.bearer, user)
		}
		if prev, seen := perUserToken[user]; seen && prev != token {
			t.Fatalf("%s got two access tokens from one refresh", user)
		}
		perUserToken[user] = token
	}

	recs := p.evidence.all()
	if len(recs) != users*perUser {
		t.Fatalf("%d evidence records, want %d", len(recs), users*perUser)
	}
	for _, rec := range recs {
		if c := rec.Credential; rec.Outcome != "allow" || c == nil || c.Backend != "oauth" || c.Ref != strings.ReplaceAll(ref, "{user}", rec.User) || c.Version != "2" {
			t.Fatalf("evidence for %s = %s / %+v", rec.User, rec.Outcome, rec.Credential)
		}
	}
	f.assertNoSecrets(t, p.evidence.json(t), "evidence")
	f.assertNoSecrets(t, p.logs.String(), "writ logs")
}
