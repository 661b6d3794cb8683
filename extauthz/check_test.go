package extauthz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
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
)

const audience = "urn:writ:test"

// rig is a Check pipeline of real parts: the development issuer's tokens,
// the real verifier, policy engine and minter; evidence is captured in
// memory unless a real log is asked for.
type rig struct {
	srv      *extauthz.Server
	dev      *tokens.DevIssuer
	keyring  *tokens.Keyring
	records  *recorder
	logs     *bytes.Buffer
	verifier *tokens.Verifier
	minter   extauthz.Minter
}

type rigOptions struct {
	engine   extauthz.Decider
	minter   extauthz.Minter
	evidence extauthz.Recorder
	cfg      extauthz.Config
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ctx := context.Background()
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
	verifier, err := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{audience})}, tokens.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)
	r := &rig{dev: dev, keyring: keyring, records: &recorder{}, logs: &bytes.Buffer{}, verifier: verifier}
	if o.minter == nil {
		m, err := tokens.NewMinter(keyring, tokens.MinterOptions{Issuer: "https://writ.test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		o.minter = m
	}
	if o.engine == nil {
		o.engine = policies.NewEngine(policies.Options{})
	}
	if o.evidence == nil {
		o.evidence = r.records
	}
	r.minter = o.minter
	if o.cfg.Logger == nil {
		o.cfg.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: r.logs}, nil))
	}
	r.srv, err = extauthz.New(extauthz.Deps{Verifier: verifier, Engine: o.engine, Minter: o.minter, Evidence: o.evidence}, o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitCaches makes recent verify and mint cache writes visible.
func (r *rig) waitCaches() {
	r.verifier.Wait()
	if m, ok := r.minter.(*tokens.Minter); ok {
		m.Wait()
	}
}

func (r *rig) token(t testing.TB, user, agent string) string {
	t.Helper()
	tok, err := r.dev.Token(tokens.DevTokenRequest{User: user, Agent: agent, Tenant: "tenant-a", Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Reveal()
}

type recorder struct {
	mu   sync.Mutex
	recs []audit.Record
	err  error
}

func (r *recorder) Append(rec audit.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.recs = append(r.recs, rec)
	return nil
}

func (r *recorder) last(t testing.TB) audit.Record {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		t.Fatal("no evidence record")
	}
	return r.recs[len(r.recs)-1]
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type fixedDecision struct {
	dec policies.Decision
	err error
}

func (f fixedDecision) Decide(context.Context, *policies.Input) (policies.Decision, string, error) {
	return f.dec, "sha256:fixed", f.err
}

type failingMinter struct{}

func (failingMinter) Mint(context.Context, tokens.MintRequest) (tokens.Minted, error) {
	return tokens.Minted{}, errors.New("signer unavailable")
}

func TestCheckAllowsAndMints(t *testing.T) {
	r := newRig(t, rigOptions{})
	inbound := r.token(t, "alice", "research-bot")
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, inbound, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("want allow, got %v", resp)
	}
	rec := r.records.last(t)
	id := writtest.Header(resp, "x-writ-decision-id")
	minted := strings.TrimPrefix(writtest.Header(resp, "authorization"), "Bearer ")
	if id != rec.DecisionID || minted == "" || minted == inbound {
		t.Fatalf("decision id %q (record %q), minted %q", id, rec.DecisionID, minted)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(minted, claims); err != nil {
		t.Fatal(err)
	}
	if claims["jti"] != rec.Token.JTI || claims["decision_id"] != id || claims["sub"] != "alice" || claims["scope"] != "mcp:tools:search_issues" {
		t.Errorf("claims %v do not match record %+v", claims, rec.Token)
	}
	want := audit.Record{
		DecisionID: id, Time: rec.Time, Dev: true, User: "alice", Agent: "research-bot", Tenant: "tenant-a",
		Actors: []string{"research-bot"}, Issuer: tokens.DevIssuerName, InboundCredential: "jwt",
		Request: audit.Request{Protocol: "grpc", Method: "POST", Host: "tools.internal", Path: "/mcp", MCPMethod: "tools/call",
			MCPName: "search_issues", ArgumentsDigest: rec.Request.ArgumentsDigest, EnvoyRequestID: "req-1", Resource: "mcp://tools"},
		PolicyRevision: rec.PolicyRevision, Outcome: "allow", Status: 200, Reason: "delegated MCP call allowed",
		Token: rec.Token, LatencyMicros: rec.LatencyMicros,
	}
	if got, _ := json.Marshal(rec); string(got) != string(mustJSON(want)) {
		t.Errorf("record\n got %s\nwant %s", got, mustJSON(want))
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestCheckAnswers(t *testing.T) {
	deny := policies.Decision{Allow: false, Reason: "not today"}
	cases := []struct {
		name       string
		opts       rigOptions
		noToken    bool
		auth       string // Authorization header override
		wantStatus int    // 0 = allowed
		wantBody   string // substring of the denial body
		wantHeader [2]string
		check      func(t *testing.T, resp *authv3.CheckResponse, rec audit.Record)
	}{
		{name: "policy deny", opts: rigOptions{engine: fixedDecision{dec: deny}}, wantStatus: 403,
			wantBody: `{"error":"access_denied","reason":"not today","decision_id":"`},
		{name: "policy deny without credential asks for one", opts: rigOptions{engine: fixedDecision{dec: deny}}, noToken: true,
			wantStatus: 401, wantHeader: [2]string{"www-authenticate", "Bearer"}},
		{name: "challenge names the resource metadata", opts: rigOptions{engine: fixedDecision{dec: deny}, cfg: extauthz.Config{ResourceMetadata: "https://writ.test/.well-known/oauth-protected-resource"}},
			auth: "Bearer garbage", wantStatus: 401,
			wantHeader: [2]string{"www-authenticate", `Bearer error="invalid_token", error_description="the token is malformed", resource_metadata="https://writ.test/.well-known/oauth-protected-resource"`}},
		{name: "basic scheme", auth: "Basic YWxpY2U6cHc=", wantStatus: 401,
			wantHeader: [2]string{"www-authenticate", `Bearer error="invalid_request", error_description="the Authorization header must use the Bearer scheme"`}},
		{name: "policy error fails closed", opts: rigOptions{engine: fixedDecision{err: policies.ErrEvaluation}}, wantStatus: 500,
			wantBody: `"reason":"policy evaluation failed"`},
		{name: "mint error fails closed", opts: rigOptions{minter: failingMinter{}}, wantStatus: 500,
			wantBody: `"reason":"could not mint a writ token"`},
		{name: "evidence unavailable fails closed", opts: rigOptions{evidence: &recorder{err: audit.ErrUnavailable}}, wantStatus: 503,
			wantBody: `"error":"server_error","reason":"the evidence log is unavailable; writ does not answer without evidence"`},
		{name: "approval required without an approval service", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true, Reason: "sensitive", Approval: &policies.ApprovalRequirement{Required: true}}}},
			wantStatus: 403, wantBody: `"error":"approval_required"`},
		{name: "credential without a backend fails closed", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true, Credential: &policies.CredentialRef{Backend: "salesforce", Ref: "users/alice"}}}},
			wantStatus: 503, wantBody: `credential backend \"salesforce\" is not configured`,
			check: func(t *testing.T, _ *authv3.CheckResponse, rec audit.Record) {
				if rec.Credential == nil || rec.Credential.Backend != "salesforce" || rec.Credential.Ref != "users/alice" {
					t.Errorf("evidence credential = %+v", rec.Credential)
				}
			}},
		{name: "custom status and body", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Reason: "slow down", HTTPStatus: 429, Body: "too many"}}},
			wantStatus: 429, wantBody: "too many"},
		{name: "decision headers and removals", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true, Audience: "https://tickets.internal",
			Headers: map[string]string{"X-Tenant": "tenant-a", "authorization": "policy cannot replace the writ token"}, RemoveHeaders: []string{"Cookie", "authorization"}}}},
			check: func(t *testing.T, resp *authv3.CheckResponse, rec audit.Record) {
				if got := writtest.Header(resp, "x-tenant"); got != "tenant-a" {
					t.Errorf("x-tenant = %q", got)
				}
				if got := writtest.Header(resp, "authorization"); !strings.HasPrefix(got, "Bearer ey") {
					t.Errorf("authorization = %q, want the writ token", got)
				}
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "txn-token,cookie" {
					t.Errorf("headers_to_remove = %v, want [txn-token cookie] (never a header writ sets)", got)
				}
				if rec.Token.Audience != "https://tickets.internal" {
					t.Errorf("audience = %q", rec.Token.Audience)
				}
			}},
		{name: "txn token profile", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true, Profile: "txn_token", Audience: "https://tickets.internal"}}},
			check: func(t *testing.T, resp *authv3.CheckResponse, rec audit.Record) {
				if writtest.Header(resp, "txn-token") == "" || writtest.Header(resp, "authorization") != "" {
					t.Errorf("want a txn-token header and no authorization header: %v", resp)
				}
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "authorization" {
					t.Errorf("headers_to_remove = %v", got)
				}
				if rec.Token.Profile != "txn_token" {
					t.Errorf("profile = %q", rec.Token.Profile)
				}
			}},
		{name: "anonymous allow mints nothing and strips credentials", opts: rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true}}}, noToken: true,
			check: func(t *testing.T, resp *authv3.CheckResponse, rec audit.Record) {
				if writtest.Header(resp, "authorization") != "" || rec.Token != nil || rec.InboundCredential != "none" {
					t.Errorf("anonymous allow minted a token: %v %+v", resp, rec)
				}
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "authorization,txn-token" {
					t.Errorf("headers_to_remove = %v", got)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			records := &recorder{}
			if tc.opts.evidence == nil {
				tc.opts.evidence = records
			}
			r := newRig(t, tc.opts)
			tok := ""
			if !tc.noToken {
				tok = r.token(t, "alice", "research-bot")
			}
			req := writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, tok, nil)
			if tc.auth != "" {
				req.Attributes.Request.Http.Headers["authorization"] = tc.auth
			}
			resp, err := r.srv.Check(t.Context(), req)
			if err != nil {
				t.Fatalf("Check returned an error; faults must be denials: %v", err)
			}
			var rec audit.Record
			if len(records.recs) > 0 {
				rec = records.last(t)
			}
			if tc.wantStatus == 0 {
				if resp.GetOkResponse() == nil {
					t.Fatalf("want allow, got %v", resp)
				}
			} else {
				denied := resp.GetDeniedResponse()
				if denied == nil || int(denied.GetStatus().GetCode()) != tc.wantStatus {
					t.Fatalf("want %d, got %v", tc.wantStatus, resp)
				}
				if !strings.Contains(denied.GetBody(), tc.wantBody) {
					t.Errorf("body %s\nwant it to contain %s", denied.GetBody(), tc.wantBody)
				}
				if resp.GetStatus().GetCode() == 0 {
					t.Error("a denial carries gRPC status OK")
				}
				if _, ok := tc.opts.evidence.(*recorder); ok && tc.opts.evidence == records && rec.Status != tc.wantStatus {
					t.Errorf("evidence status %d, want %d", rec.Status, tc.wantStatus)
				}
			}
			if tc.wantHeader[0] != "" {
				if got := writtest.Header(resp, tc.wantHeader[0]); got != tc.wantHeader[1] {
					t.Errorf("%s = %s\nwant %s", tc.wantHeader[0], got, tc.wantHeader[1])
				}
			}
			if tc.check != nil {
				tc.check(t, resp, rec)
			}
		})
	}
}

// TestCheckReusesMintedTokens: the same user, agent, audience and scopes get
// the same writ token until most of its lifetime has passed.
func TestCheckReusesMintedTokens(t *testing.T) {
	r := newRig(t, rigOptions{})
	tok := r.token(t, "alice", "research-bot")
	var minted []string
	for i := 0; i < 2; i++ {
		resp, err := r.srv.Check(t.Context(), writtest.ToolCall("search_issues", map[string]any{"i": i}, tok, nil))
		if err != nil {
			t.Fatal(err)
		}
		minted = append(minted, writtest.Header(resp, "authorization"))
		r.waitCaches()
	}
	if minted[0] != minted[1] {
		t.Error("a second identical call minted a new token")
	}
	if rec := r.records.last(t); rec.Token == nil || !rec.Token.Reused {
		t.Errorf("second record does not say the token was reused: %+v", rec.Token)
	}
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("create_issue", nil, tok, nil))
	if err != nil {
		t.Fatal(err)
	}
	if writtest.Header(resp, "authorization") == minted[0] {
		t.Error("another tool (another scope) reused the token")
	}
}

func BenchmarkCheck(b *testing.B) {
	r, reqs := benchRig(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		resp, _ := r.srv.Check(ctx, reqs[i%len(reqs)])
		if resp.GetOkResponse() == nil {
			b.Fatalf("denied: %v", resp)
		}
		i++
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	r, reqs := benchRig(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, _ := r.srv.Check(ctx, reqs[i%len(reqs)])
			if resp.GetOkResponse() == nil {
				b.Errorf("denied: %v", resp)
				return
			}
			i++
		}
	})
}

// benchRig is the full path: real verifier (cached), the built-in policy,
// the real minter (cached), and the real evidence log on SQLite.
func benchRig(b *testing.B) (*rig, []*authv3.CheckRequest) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(ctx, db, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { log.Run(runCtx); close(done) }()
	b.Cleanup(func() {
		log.Close(ctx)
		cancel()
		<-done
		db.Close()
	})
	r := newRig(b, rigOptions{evidence: log, cfg: extauthz.Config{Logger: slog.New(slog.DiscardHandler)}})
	reqs := make([]*authv3.CheckRequest, 0, 1000)
	for u := 0; u < 1000; u++ {
		tok := r.token(b, "user-"+strconv.Itoa(u), "agent-"+strconv.Itoa(u%10))
		reqs = append(reqs, writtest.ToolCall("search_issues", map[string]any{"q": "bug", "page": u % 7}, tok, nil))
	}
	for _, req := range reqs { // warm the verify and mint caches, as a running writ would be
		r.srv.Check(ctx, req)
	}
	r.waitCaches()
	return r, reqs
}
