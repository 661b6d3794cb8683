package extauthz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	verifier extauthz.Verifier // default: the real verifier, trusting the development issuer
	engine   extauthz.Decider
	minter   extauthz.Minter
	evidence extauthz.Recorder
	cfg      extauthz.Config
	// credentials is the vault host; nil means none configured.
	credentials extauthz.Credentials
	// approvals is the approval store; nil means none configured.
	approvals extauthz.Approvals
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
	if o.verifier == nil {
		o.verifier = verifier
	}
	r.srv, err = extauthz.New(extauthz.Deps{Verifier: o.verifier, Engine: o.engine, Minter: o.minter, Evidence: o.evidence, Credentials: o.credentials, Approvals: o.approvals}, o.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.srv.Close)
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
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "txn-token,proxy-authorization,cookie" {
					t.Errorf("headers_to_remove = %v, want [txn-token proxy-authorization cookie] (never a header writ sets)", got)
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
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "authorization,proxy-authorization" {
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
				if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != "authorization,txn-token,proxy-authorization" {
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

// A panic value that carries request data: it must never reach the logs.
const panicSecret = "sk-live-PANIC-VALUE"

type panickingVerifier struct{}

func (panickingVerifier) Verify(context.Context, string) (*tokens.Identity, error) {
	panic(errors.New("verifier bug: " + panicSecret))
}

type panickingDecider struct{}

func (panickingDecider) Decide(context.Context, *policies.Input) (policies.Decision, string, error) {
	panic("policy bug: " + panicSecret)
}

type nilDerefDecider struct{ dec *policies.Decision }

func (n nilDerefDecider) Decide(context.Context, *policies.Input) (policies.Decision, string, error) {
	return *n.dec, "", nil // n.dec is nil
}

type panickingMinter struct{}

func (panickingMinter) Mint(context.Context, tokens.MintRequest) (tokens.Minted, error) {
	panic(fmt.Sprintf("minter bug: %s", panicSecret))
}

// TestCheckPanicIsDenial: a panic in any phase is a 500 with a recorded
// evidence record; the log names the panic's type and where it happened,
// never its value.
func TestCheckPanicIsDenial(t *testing.T) {
	cases := []struct {
		name      string
		opts      rigOptions
		wantType  string
		wantAt    string
		wantAgent string // the evidence knows the caller once authenticate has run
	}{
		{name: "verifier", opts: rigOptions{verifier: panickingVerifier{}}, wantType: "*errors.errorString", wantAt: "panickingVerifier.Verify"},
		{name: "decider", opts: rigOptions{engine: panickingDecider{}}, wantType: "string", wantAt: "panickingDecider.Decide", wantAgent: "research-bot"},
		{name: "nil dereference", opts: rigOptions{engine: nilDerefDecider{}}, wantType: "runtime.errorString", wantAt: "nilDerefDecider.Decide", wantAgent: "research-bot"},
		{name: "minter", opts: rigOptions{minter: panickingMinter{}}, wantType: "string", wantAt: "panickingMinter.Mint", wantAgent: "research-bot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.opts)
			resp, err := r.srv.Check(t.Context(), writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), nil))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied.GetStatus().GetCode() != 500 || resp.GetStatus().GetCode() == 0 {
				t.Fatalf("want 500, got %v", resp)
			}
			id := writtest.Header(resp, "x-writ-decision-id")
			if want := `{"error":"server_error","reason":"internal error","decision_id":"` + id + `"}`; denied.GetBody() != want {
				t.Errorf("body %s\nwant %s", denied.GetBody(), want)
			}
			rec := r.records.last(t)
			if rec.DecisionID != id || rec.Status != 500 || rec.Outcome != "error" || rec.Reason != "internal error" || rec.Agent != tc.wantAgent {
				t.Errorf("evidence %+v", rec)
			}
			logs := r.logs.String()
			if strings.Contains(logs, panicSecret) {
				t.Errorf("the panic's value reached the logs:\n%s", logs)
			}
			var line struct {
				Msg        string `json:"msg"`
				DecisionID string `json:"decision_id"`
				PanicType  string `json:"panic_type"`
				PanicAt    string `json:"panic_at"`
			}
			for l := range strings.SplitSeq(logs, "\n") {
				if strings.Contains(l, `"panic_type"`) {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line.DecisionID != id || line.PanicType != tc.wantType || !strings.Contains(line.PanicAt, tc.wantAt) {
				t.Errorf("panic log line %+v, want type %s at %s", line, tc.wantType, tc.wantAt)
			}
		})
	}
}

// TestCheckAudience: the writ token's audience is the decision's, the
// route's resource, or check.default_audience, and never the Host.
func TestCheckAudience(t *testing.T) {
	cases := []struct {
		name            string
		decision        string
		route           map[string]string
		defaultAudience string
		want            string // "" for the 500
	}{
		{name: "decision", decision: "https://decided.internal", route: map[string]string{"resource": "mcp://route"}, defaultAudience: "https://default.internal", want: "https://decided.internal"},
		{name: "route resource", route: map[string]string{"resource": "mcp://route"}, defaultAudience: "https://default.internal", want: "mcp://route"},
		{name: "configured default", route: map[string]string{"mcp": "true"}, defaultAudience: "https://default.internal", want: "https://default.internal"},
		{name: "none: fail closed, not the Host", route: map[string]string{"mcp": "true"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{engine: fixedDecision{dec: policies.Decision{Allow: true, Audience: tc.decision}},
				cfg: extauthz.Config{DefaultAudience: tc.defaultAudience}})
			req := writtest.ToolCall("search_issues", nil, r.token(t, "alice", "research-bot"), tc.route)
			req.Attributes.Request.Http.Host = "payments.internal"
			resp, err := r.srv.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			rec := r.records.last(t)
			if tc.want == "" {
				if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 500 || rec.Token != nil ||
					rec.Reason != "no audience for the writ token: set decision.audience, the route's resource or check.default_audience" {
					t.Fatalf("status %d, evidence %+v", got, rec)
				}
				return
			}
			if resp.GetOkResponse() == nil || rec.Token == nil || rec.Token.Audience != tc.want {
				t.Fatalf("want an allow for %s, got %v (evidence token %+v)", tc.want, resp, rec.Token)
			}
		})
	}
}

// TestCheckRemovesAgentHeaders: an allow removes the agent's credentials and
// every x-writ-* header it sent, then the decision's removals; never a
// header writ sets. HTTP mode sends the same list.
func TestCheckRemovesAgentHeaders(t *testing.T) {
	dec := policies.Decision{Allow: true, Audience: "https://tools.internal",
		Headers:       map[string]string{"X-Writ-Agent": "research-bot"},
		RemoveHeaders: []string{"Cookie", "x-writ-user", "PROXY-AUTHORIZATION", "cookie", "x-writ-decision-id", "X-Writ-Agent"}}
	agentHeaders := map[string]string{
		"proxy-authorization": "Basic c2VjcmV0OnNlY3JldA==",
		"x-writ-user":         "admin",
		"x-writ-agent":        "other-bot",
		"x-writ-zone":         "z",
		"x-writ-decision-id":  "forged",
	}
	const want = "txn-token,proxy-authorization,x-writ-user,x-writ-zone,cookie"

	r := newRig(t, rigOptions{engine: fixedDecision{dec: dec}})
	tok := r.token(t, "alice", "research-bot")
	req := writtest.ToolCall("search_issues", nil, tok, nil)
	for k, v := range agentHeaders {
		req.Attributes.Request.Http.Headers[k] = v
	}
	resp, err := r.srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resp.GetOkResponse().GetHeadersToRemove(), ","); got != want {
		t.Errorf("gRPC headers_to_remove = %s\nwant %s", got, want)
	}
	if got := writtest.Header(resp, "x-writ-decision-id"); got == "forged" || got != r.records.last(t).DecisionID {
		t.Errorf("x-writ-decision-id = %q", got)
	}
	if got := writtest.Header(resp, "x-writ-agent"); got != "research-bot" {
		t.Errorf("x-writ-agent = %q, want the decision's", got)
	}

	srv := httptest.NewServer(r.srv.HTTPHandler())
	t.Cleanup(srv.Close)
	hreq, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range agentHeaders {
		hreq.Header.Set(k, v)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Writ-Resource", "mcp://tools") // route context, as Envoy's headers_to_add sets it
	hreq.Header.Set("X-Writ-Tenant", "tenant-a")
	hreq.Header.Set("X-Writ-Mcp", "true")
	hresp, err := srv.Client().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != 200 {
		t.Fatalf("HTTP mode status %d", hresp.StatusCode)
	}
	if got := hresp.Header.Get("X-Envoy-Auth-Headers-To-Remove"); got != want {
		t.Errorf("HTTP x-envoy-auth-headers-to-remove = %s\nwant %s", got, want)
	}
}

// TestCheckAuthenticatesBeforeBody: a credential that does not verify is
// answered 401 whatever the body holds; the body is parsed for a verified
// caller, or for one that sent no credential, whom policy may still allow.
func TestCheckAuthenticatesBeforeBody(t *testing.T) {
	malformed := `{"jsonrpc":"2.0",`
	cases := []struct {
		name       string
		auth       string // "" none; "valid" the rig's token
		body       string
		cfg        extauthz.Config
		wantStatus int
		wantBody   string
		wantUser   string
	}{
		{name: "invalid token, malformed JSON-RPC", auth: "Bearer not-a-token", body: malformed, wantStatus: 401, wantBody: `"error":"invalid_token"`},
		{name: "Basic scheme, malformed JSON-RPC", auth: "Basic YWxpY2U6cHc=", body: malformed, wantStatus: 401, wantBody: `"error":"invalid_request"`},
		{name: "invalid token, body over the limit", auth: "Bearer not-a-token", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			cfg: extauthz.Config{MaxBodyBytes: 16}, wantStatus: 401, wantBody: `"error":"invalid_token"`},
		{name: "no credential, malformed JSON-RPC", body: malformed, wantStatus: 400, wantBody: `"code":-32700`},
		{name: "valid token, malformed JSON-RPC", auth: "valid", body: malformed, wantStatus: 400, wantBody: `"code":-32700`, wantUser: "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := allowAll()
			r := newRig(t, rigOptions{engine: c, cfg: tc.cfg})
			req := rawCall("", tc.body, nil, nil)
			switch tc.auth {
			case "":
			case "valid":
				req.Attributes.Request.Http.Headers["authorization"] = "Bearer " + r.token(t, "alice", "research-bot")
			default:
				req.Attributes.Request.Http.Headers["authorization"] = tc.auth
			}
			resp, err := r.srv.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := deniedStatus(t, resp); got != tc.wantStatus {
				t.Fatalf("status %d, want %d: %v", got, tc.wantStatus, resp)
			}
			if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, tc.wantBody) {
				t.Errorf("body %s, want it to contain %s", body, tc.wantBody)
			}
			if c.input() != nil {
				t.Error("the policy was asked")
			}
			rec := r.records.last(t)
			if rec.Status != tc.wantStatus || rec.User != tc.wantUser || rec.Request.Path != "/mcp" || rec.Request.MCPMethod != "" {
				t.Errorf("evidence %+v", rec)
			}
		})
	}
}

// TestCheckRecordsResourceURIWithoutQuery: the evidence and the log line
// keep a resources/* URI without its query and fragment, as they keep the
// path; policy still sees the whole name.
func TestCheckRecordsResourceURIWithoutQuery(t *testing.T) {
	for _, tc := range []struct{ method, name, want string }{
		{"resources/read", "https://docs.internal/a?sig=SECRET", "https://docs.internal/a"},
		{"resources/read", "file:///notes.md#SECRET", "file:///notes.md"},
		{"resources/read", "file:///a#b?SECRET", "file:///a"},
		{"resources/subscribe", "https://docs.internal/b?SECRET", "https://docs.internal/b"},
		{"resources/read", "file:///plain.md", "file:///plain.md"},
		{"prompts/get", "summarise", "summarise"},
	} {
		t.Run(tc.method+" "+tc.name, func(t *testing.T) {
			c := allowAll()
			r := newRig(t, rigOptions{engine: c})
			params := map[string]string{"uri": tc.name}
			if tc.method == "prompts/get" {
				params = map[string]string{"name": tc.name}
			}
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": tc.method, "params": params})
			resp, err := r.srv.Check(t.Context(), rawCall(r.token(t, "alice", "research-bot"), string(body), nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			if deniedStatus(t, resp) != 0 {
				t.Fatalf("denied: %v", resp)
			}
			if in := c.input(); in.MCP == nil || in.MCP.Name != tc.name {
				t.Errorf("policy saw %+v, want the whole name", in.MCP)
			}
			if got := r.records.last(t).Request.MCPName; got != tc.want {
				t.Errorf("evidence mcp name %q, want %q", got, tc.want)
			}
			logs := r.logs.String()
			if strings.Contains(logs, "SECRET") || !strings.Contains(logs, `"mcp_name":"`+tc.want+`"`) {
				t.Errorf("log line:\n%s", logs)
			}
		})
	}
}

// TestCheckDynamicMetadata: the policy's dynamic_metadata (JSON data, with
// numbers as OPA renders them) reaches Envoy beside the decision id.
func TestCheckDynamicMetadata(t *testing.T) {
	dec := policies.Decision{Allow: true, Audience: "https://tickets.internal", DynamicMetadata: map[string]any{
		"route": "tickets", "weight": json.Number("3"), "tags": []any{"a", json.Number("1.5")}, "nested": map[string]any{"ok": true},
	}}
	r := newRig(t, rigOptions{engine: fixedDecision{dec: dec}})
	resp, err := r.srv.Check(t.Context(), writtest.ToolCall("search_issues", nil, r.token(t, "alice", "bot"), nil))
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetDynamicMetadata().AsMap()
	want := map[string]any{"route": "tickets", "weight": 3.0, "tags": []any{"a", 1.5}, "nested": map[string]any{"ok": true},
		"decision_id": writtest.Header(resp, "x-writ-decision-id")}
	if string(mustJSON(got)) != string(mustJSON(want)) {
		t.Errorf("dynamic_metadata = %s, want %s", mustJSON(got), mustJSON(want))
	}
}
