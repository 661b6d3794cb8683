// Package e2e drives the real writ binary: a real gRPC ext_authz client, a
// real HTTP client for Envoy's HTTP service mode, the served JWKS, and the
// evidence log read back through `writ audit`.
package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/writ-dev/writ/test/writtest"
)

func verifyWithJWKS(t *testing.T, api, token string) jwt.MapClaims {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{"http://" + api + "/.well-known/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("minted token does not verify against the served JWKS: %v", err)
	}
	if typ := tok.Header["typ"]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt", typ)
	}
	return claims
}

func TestCheckEndToEnd(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	ctx := t.Context()
	inbound := idp.Delegated(t, "alice", "research-bot", "tenant-a")

	// gRPC ext_authz
	resp, err := w.Check(ctx, writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, inbound, nil))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want allow, got %v", resp)
	}
	decisionID := writtest.Header(resp, "x-writ-decision-id")
	bearer := writtest.Header(resp, "authorization")
	if decisionID == "" || !strings.HasPrefix(bearer, "Bearer ") {
		t.Fatalf("decision id %q, authorization %q", decisionID, bearer)
	}
	minted := strings.TrimPrefix(bearer, "Bearer ")
	if minted == inbound {
		t.Fatal("the agent's own token was passed through")
	}
	if got := ok.GetHeadersToRemove(); !contains(got, "txn-token") {
		t.Errorf("headers_to_remove = %v, want txn-token removed", got)
	}
	if got := resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue(); got != decisionID {
		t.Errorf("dynamic_metadata decision_id = %q, want %q", got, decisionID)
	}
	claims := verifyWithJWKS(t, w.API, minted)
	act, _ := claims["act"].(map[string]any)
	for k, want := range map[string]any{
		"iss": w.Issuer, "sub": "alice", "aud": "mcp://tools", "client_id": "research-bot",
		"scope": "mcp:tools:search_issues", "tenant": "tenant-a", "decision_id": decisionID,
	} {
		if got := claims[k]; got != want && !(k == "aud" && audContains(got, want.(string))) {
			t.Errorf("claim %s = %v, want %v", k, got, want)
		}
	}
	if act["sub"] != "research-bot" {
		t.Errorf("act = %v, want sub research-bot", claims["act"])
	}
	exp, _ := claims.GetExpirationTime()
	if exp == nil || time.Until(exp.Time) > 5*time.Minute+time.Second || time.Until(exp.Time) <= 0 {
		t.Errorf("exp = %v, want within the 5m max_ttl", exp)
	}

	// HTTP service mode, with a plain HTTP client as Envoy would send it.
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_issues","arguments":{"q":"bug"}}}`
	hreq, _ := http.NewRequestWithContext(ctx, "POST", "http://"+w.HTTP+"/mcp", strings.NewReader(body))
	hreq.Header.Set("Authorization", "Bearer "+inbound)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Writ-Resource", "mcp://tools")
	hreq.Header.Set("X-Writ-Mcp", "true")
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, hresp.Body)
	hresp.Body.Close()
	if hresp.StatusCode != 200 {
		t.Fatalf("HTTP mode status %d, want 200", hresp.StatusCode)
	}
	httpDecision := hresp.Header.Get("X-Writ-Decision-Id")
	httpMinted := strings.TrimPrefix(hresp.Header.Get("Authorization"), "Bearer ")
	if httpDecision == "" || httpMinted == "" || httpMinted == inbound {
		t.Fatalf("HTTP mode headers: %v", hresp.Header)
	}
	verifyWithJWKS(t, w.API, httpMinted)
	if got := hresp.Header.Get("X-Envoy-Auth-Headers-To-Remove"); !strings.Contains(got, "txn-token") {
		t.Errorf("x-envoy-auth-headers-to-remove = %q", got)
	}

	// Health and metrics on the API listener.
	for path, want := range map[string]string{"/healthz": `"ok"`, "/metrics": `writ_decisions_total{cause="allowed",outcome="allow"} 2`} {
		r, err := http.Get("http://" + w.API + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not contain %s:\n%.2000s", path, want, b)
		}
	}

	// Both Checks carried the same inbound token and asked for the same
	// writ token: one lookup each in the verify and the mint cache per
	// Check. The second is a hit once the first entry was admitted (the
	// caches admit asynchronously); the mint hit is visible in the answer,
	// which then carries the gRPC Check's token.
	cache := cacheRequests(t, w.API)
	for _, c := range []string{"verify", "mint"} {
		if hits, misses := cache[c+"/hit"], cache[c+"/miss"]; hits+misses != 2 || misses < 1 {
			t.Errorf("%s cache: %v hits, %v misses; want 2 lookups, the first a miss", c, hits, misses)
		}
	}
	if reused := httpMinted == minted; (cache["mint/hit"] == 1) != reused {
		t.Errorf("mint cache hits = %v, but the HTTP Check reused the gRPC Check's token: %v", cache["mint/hit"], reused)
	}
	t.Logf("writ_cache_requests_total after two Checks: %v", cache)

	if err := w.Terminate(t); err != nil {
		t.Fatalf("writ exited with %v\n%s", err, w.Stderr())
	}
	out, err := w.Run(t, "audit", "show", "--data-dir", w.DataDir, decisionID)
	if err != nil {
		t.Fatalf("audit show: %v\n%s", err, out)
	}
	var rec struct {
		DecisionID string `json:"decision_id"`
		Outcome    string `json:"outcome"`
		User       string `json:"user"`
		Agent      string `json:"agent"`
		Tenant     string `json:"tenant"`
		Policy     string `json:"policy_revision"`
		Hash       string `json:"hash"`
		Request    struct {
			MCPMethod string `json:"mcp_method"`
			MCPName   string `json:"mcp_name"`
			Digest    string `json:"arguments_sha256"`
		} `json:"request"`
		Token struct {
			JTI string `json:"jti"`
		} `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("audit show output: %v\n%s", err, out)
	}
	if rec.DecisionID != decisionID || rec.Outcome != "allow" || rec.User != "alice" || rec.Agent != "research-bot" ||
		rec.Tenant != "tenant-a" || rec.Request.MCPName != "search_issues" || rec.Token.JTI != claims["jti"] ||
		!strings.HasPrefix(rec.Policy, "sha256:") || len(rec.Request.Digest) != 64 || rec.Hash == "" {
		t.Errorf("evidence record = %+v", rec)
	}
	out, err = w.Run(t, "audit", "verify", "--data-dir", w.DataDir)
	if err != nil || !strings.Contains(out, "evidence chain OK: 2 records") {
		t.Errorf("audit verify: %v %s", err, out)
	}
}

var cacheRequestsLine = regexp.MustCompile(`(?m)^writ_cache_requests_total\{cache="(\w+)",result="(\w+)"\} (\S+)$`)

// cacheRequests scrapes /metrics and returns writ_cache_requests_total by
// "cache/result"; every cache and result must be present.
func cacheRequests(t *testing.T, api string) map[string]float64 {
	t.Helper()
	r, err := http.Get("http://" + api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range cacheRequestsLine.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("%s: %v", m[0], err)
		}
		got[m[1]+"/"+m[2]] = v
	}
	for _, k := range []string{"verify/hit", "verify/miss", "mint/hit", "mint/miss"} {
		if _, ok := got[k]; !ok {
			t.Fatalf("/metrics has no writ_cache_requests_total for %s:\n%.3000s", k, b)
		}
	}
	return got
}

func audContains(got any, want string) bool {
	switch v := got.(type) {
	case string:
		return v == want
	case []any:
		return len(v) == 1 && v[0] == want
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestHostileTokens sends tokens an attacker would try; each must be a 401
// with the exact challenge, never an allow.
func TestHostileTokens(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	ctx := t.Context()
	now := time.Now()

	pubDER, err := x509.MarshalPKIXPublicKey(idpPublicKey(t, idp))
	if err != nil {
		t.Fatal(err)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": idp.Name, "aud": idp.Audience, "sub": "alice", "exp": now.Add(time.Hour).Unix()})
	hs.Header["kid"] = "idp-key-1"
	hsToken, _ := hs.SignedString(pubDER)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": idp.Name, "aud": idp.Audience, "sub": "alice", "exp": now.Add(time.Hour).Unix()})
	noneToken, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	other := writtest.NewIssuer(t) // same iss, a key writ does not know
	unknownKid := other.WithKeyID("idp-key-2").Sign(t, jwt.MapClaims{"sub": "alice"})
	sameKidOtherKey := other.Sign(t, jwt.MapClaims{"sub": "alice"})

	cases := []struct {
		name, token, desc string
	}{
		{"alg none", noneToken, "the token's signing algorithm is not allowed"},
		{"HS256 keyed with the issuer's public key", hsToken, "the token's signing algorithm is not allowed"},
		{"expired", idp.Sign(t, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), "the token has expired"},
		{"wrong aud", idp.Sign(t, jwt.MapClaims{"sub": "alice", "aud": "https://elsewhere"}), "the token's audience is not accepted"},
		{"wrong iss", idp.Sign(t, jwt.MapClaims{"sub": "alice", "iss": "https://evil.example"}), "the token's issuer is not trusted"},
		{"unknown kid", unknownKid, "the token's signing key is unknown"},
		{"known kid, another key", sameKidOtherKey, "the token's signature is invalid"},
		{"signature stripped", inboundStripped(idp.Delegated(t, "alice", "bot", "t")), "the token's signature is invalid"},
		{"garbage", "not.a.jwt", "the token is malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := w.Check(ctx, writtest.ToolCall("search_issues", nil, tc.token, nil))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil || denied.GetStatus().GetCode() != 401 {
				t.Fatalf("want 401, got %v", resp)
			}
			want := `Bearer error="invalid_token", error_description="` + tc.desc + `"`
			if got := writtest.Header(resp, "www-authenticate"); got != want {
				t.Errorf("WWW-Authenticate = %s\nwant              %s", got, want)
			}
			if strings.Contains(denied.GetBody(), tc.token) {
				t.Error("the denial echoes the token")
			}
		})
	}

	t.Run("no token", func(t *testing.T) {
		resp, err := w.Check(ctx, writtest.ToolCall("search_issues", nil, "", nil))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetDeniedResponse().GetStatus().GetCode() != 401 || writtest.Header(resp, "www-authenticate") != "Bearer" {
			t.Fatalf("want 401 with a bare Bearer challenge, got %v", resp)
		}
	})
}

// inboundStripped drops a token's signature but keeps the trailing dot.
func inboundStripped(tok string) string { return tok[:strings.LastIndexByte(tok, '.')+1] }

func idpPublicKey(t *testing.T, idp *writtest.Issuer) *ecdsa.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(idp.JWKSFile)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	set, err := kf.Storage().KeyReadAll(t.Context())
	if err != nil || len(set) != 1 {
		t.Fatal(err)
	}
	return set[0].Key().(*ecdsa.PublicKey)
}

// TestHostileRequests: requests writ refuses before deciding, each with its
// exact answer.
func TestHostileRequests(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	ctx := t.Context()
	tok := idp.Delegated(t, "alice", "research-bot", "tenant-a")

	type want struct {
		status  int
		rpcCode int
	}
	cases := []struct {
		name   string
		mutate func(*authv3.CheckRequest)
		want   want
	}{
		{"64 KiB of headers", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Headers["x-padding"] = strings.Repeat("a", 64<<10)
		}, want{431, 0}},
		{"malformed JSON-RPC", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.RawBody = []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":`)
			r.Attributes.Request.Http.Size = int64(len(r.Attributes.Request.Http.RawBody))
		}, want{400, -32700}},
		{"header names another tool than the body", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Headers["mcp-name"] = "delete_repo"
		}, want{400, -32020}},
		{"truncated body", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Size = 1 << 20
		}, want{413, 0}},
		{"JSON-RPC batch", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.RawBody = []byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_issues"}}]`)
			r.Attributes.Request.Http.Size = int64(len(r.Attributes.Request.Http.RawBody))
		}, want{400, -32600}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, tok, nil)
			tc.mutate(req)
			resp, err := w.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil || int(denied.GetStatus().GetCode()) != tc.want.status {
				t.Fatalf("want %d, got %v", tc.want.status, resp)
			}
			if tc.want.rpcCode != 0 {
				var body struct {
					JSONRPC string `json:"jsonrpc"`
					Error   struct {
						Code int `json:"code"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil || body.JSONRPC != "2.0" || body.Error.Code != tc.want.rpcCode {
					t.Errorf("body = %s, want JSON-RPC error %d", denied.GetBody(), tc.want.rpcCode)
				}
			}
		})
	}
}

// TestPolicyFaultsFailClosed: a policy that errors, or returns the wrong
// type, denies with a clear reason — never allows.
func TestPolicyFaultsFailClosed(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	for name, rego := range map[string]string{
		"error at evaluation": "package writ.authz\n\ndecision := {\"allow\": true, \"reason\": sprintf(\"%d\", [1 / 0])}\n",
		"wrong type":          "package writ.authz\n\ndecision := \"allow\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(rego), 0o600); err != nil {
				t.Fatal(err)
			}
			w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}, Args: []string{"--policies", dir}})
			resp, err := w.Check(t.Context(), writtest.ToolCall("search_issues", nil, idp.Delegated(t, "alice", "bot", "t"), nil))
			if err != nil {
				t.Fatal(err)
			}
			denied := resp.GetDeniedResponse()
			if denied == nil || denied.GetStatus().GetCode() != 500 || !strings.Contains(denied.GetBody(), `"reason":"policy evaluation failed"`) {
				t.Fatalf("want a 500 denial with the reason, got %v", resp)
			}
		})
	}
}

// TestNoSecretsInLogs captures everything writ prints and stores, and looks
// for every token that crossed it.
func TestNoSecretsInLogs(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}, Config: "log:\n  level: debug\n"})
	ctx := t.Context()
	var secrets []string
	inbound := idp.Delegated(t, "alice", "research-bot", "tenant-a")
	secrets = append(secrets, inbound)
	for _, tool := range []string{"search_issues", "list_repos"} {
		resp, err := w.Check(ctx, writtest.ToolCall(tool, map[string]any{"q": "x"}, inbound, nil))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimPrefix(writtest.Header(resp, "authorization"), "Bearer "))
	}
	bad := idp.Sign(t, jwt.MapClaims{"sub": "alice", "aud": "https://elsewhere"})
	secrets = append(secrets, bad)
	if _, err := w.Check(ctx, writtest.ToolCall("search_issues", nil, bad, nil)); err != nil {
		t.Fatal(err)
	}
	if err := w.Terminate(t); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(w.DataDir, "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(w.DataDir, "writ.db-wal"))
	logs := w.Stdout() + w.Stderr()
	if !strings.Contains(logs, `"msg":"decision"`) {
		t.Fatalf("no decision lines captured:\n%s", logs)
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("a token was not captured")
		}
		// The signature is the part that must never leak; check it alone too.
		sig := s[strings.LastIndexByte(s, '.')+1:]
		for where, text := range map[string]string{"logs": logs, "database": string(db), "wal": string(wal)} {
			if strings.Contains(text, s) || strings.Contains(text, sig) {
				t.Errorf("a token appears in the %s", where)
			}
		}
	}
}

// TestShutdownUnderLoadLosesNoEvidence: SIGTERM while Checks are in flight;
// every Check writ answered has a durable evidence record.
func TestShutdownUnderLoadLosesNoEvidence(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	ctx := t.Context()
	tok := idp.Delegated(t, "alice", "research-bot", "tenant-a")

	var answered atomic.Int64
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				_, err := w.Check(ctx, writtest.ToolCall("search_issues", map[string]any{"i": i}, tok, nil))
				if err != nil {
					if status.Code(err) == codes.Unavailable || status.Code(err) == codes.Canceled {
						return // writ stopped taking Checks
					}
					t.Errorf("check: %v", err)
					return
				}
				if answered.Add(1) == 200 {
					once.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	if err := w.Terminate(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, w.Stderr())
	}
	wg.Wait()
	out, err := w.Run(t, "audit", "verify", "--data-dir", w.DataDir)
	if err != nil {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	want := "evidence chain OK: " + strconv.FormatInt(answered.Load(), 10) + " records"
	if !strings.Contains(out, want) {
		t.Fatalf("answered %d checks; audit verify says %q", answered.Load(), strings.TrimSpace(out))
	}
}
