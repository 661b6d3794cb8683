package tokens_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/writ-dev/writ/tokens"
)

// sentinels are the errors Verify may wrap; exactly one must match.
var sentinels = []error{
	tokens.ErrMalformed, tokens.ErrUnknownIssuer, tokens.ErrAlgorithm, tokens.ErrUnknownKey,
	tokens.ErrSignature, tokens.ErrExpired, tokens.ErrNotYetValid, tokens.ErrAudience,
	tokens.ErrIssuer, tokens.ErrType, tokens.ErrActorChain, tokens.ErrMissingSubject,
}

func assertOnlySentinel(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("err %v also wraps %v", err, s)
		}
	}
}

func TestVerifyDelegatedToken(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	claims := idp.claims(clk.Now())
	claims["act"] = map[string]any{"sub": "agent-3", "act": map[string]any{"sub": "orchestrator"}}
	raw := idp.sign(t, ecKID, claims, nil)
	id, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	want := &tokens.Identity{
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Issuer: idpName, ClientID: "agent-3",
		Actors: []string{"agent-3", "orchestrator"}, Scopes: []string{"tools.call", "tools.list"},
		ExpiresAt: epoch.Add(time.Hour),
	}
	if diff := cmp.Diff(want, id, cmpopts.IgnoreFields(tokens.Identity{}, "Claims")); diff != "" {
		t.Fatalf("identity (-want +got):\n%s", diff)
	}
	if id.Claims["tenant"] != "tenant-a" || id.Claims["sub"] != "user-7" {
		t.Fatalf("claims = %v", id.Claims)
	}
}

func TestVerifyIdentityShapes(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	cfg := idp.config(t)
	cfg.TenantClaim = "org"
	v := newVerifier(t, []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{Now: clk.Now})
	for _, tc := range []struct {
		name   string
		change func(jwt.MapClaims)
		want   tokens.Identity
	}{
		{"user via client", func(c jwt.MapClaims) { delete(c, "act"); c["org"] = "t1" },
			tokens.Identity{User: "user-7", Agent: "agent-3", ClientID: "agent-3", Tenant: "t1"}},
		{"azp fallback", func(c jwt.MapClaims) { delete(c, "act"); delete(c, "client_id"); c["azp"] = "agent-9" },
			tokens.Identity{User: "user-7", Agent: "agent-9", ClientID: "agent-9"}},
		{"agent as itself", func(c jwt.MapClaims) { delete(c, "act"); c["sub"] = "agent-3" },
			tokens.Identity{Agent: "agent-3", ClientID: "agent-3"}},
		{"no client", func(c jwt.MapClaims) { delete(c, "act"); delete(c, "client_id") },
			tokens.Identity{User: "user-7"}},
		{"scp array", func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []any{"a", "b"} },
			tokens.Identity{User: "user-7", Agent: "agent-3", ClientID: "agent-3", Actors: []string{"agent-3"}, Scopes: []string{"a", "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := idp.claims(clk.Now())
			delete(claims, "scope")
			tc.change(claims)
			id, err := v.Verify(context.Background(), idp.sign(t, ecKID, claims, nil))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Issuer = idpName
			tc.want.ExpiresAt = epoch.Add(time.Hour)
			if diff := cmp.Diff(&tc.want, id, cmpopts.IgnoreFields(tokens.Identity{}, "Claims"), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyHostile(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	idp.keys["rsa-1"] = newRSAKey(t)
	other := newTestIssuer(t)
	other.name = "https://other.test"
	other.keys = map[string]crypto.Signer{"other-1": newECKey(t)}
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t), other.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	now := clk.Now()
	valid := func() jwt.MapClaims { return idp.claims(now) }
	with := func(k string, val any) jwt.MapClaims {
		c := valid()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	ecPub := loadFixtureKey(t).Public()
	pubDER, err := x509.MarshalPKIXPublicKey(ecPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwksBytes := idp.jwks(t, ecKID)

	deep := map[string]any{"sub": "a6"}
	for _, s := range []string{"a5", "a4", "a3", "a2", "a1"} {
		deep = map[string]any{"sub": s, "act": deep}
	}
	okDepth := deep["act"]

	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	valid1 := idp.sign(t, ecKID, valid(), nil)
	parts := strings.Split(valid1, ".")

	cases := []struct {
		name string
		raw  string
		want error
	}{
		{"alg none", noneToken, tokens.ErrAlgorithm},
		{"alg none with kid", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"HS256 keyed by public PEM", signWith(t, jwt.SigningMethodHS256, pubPEM, ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"HS256 keyed by public DER", signWith(t, jwt.SigningMethodHS256, pubDER, ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"HS256 keyed by JWKS", signWith(t, jwt.SigningMethodHS256, jwksBytes, ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"HS512 keyed by public PEM", signWith(t, jwt.SigningMethodHS512, pubPEM, ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"algorithm outside allowlist", signWith(t, jwt.SigningMethodES384, newECKey384(t), ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"RS256 naming the EC key", signWith(t, jwt.SigningMethodRS256, idp.keys["rsa-1"], ecKID, valid(), nil), tokens.ErrAlgorithm},
		{"ES256 naming the RSA key", signWith(t, jwt.SigningMethodES256, idp.keys[ecKID], "rsa-1", valid(), nil), tokens.ErrAlgorithm},
		{"unknown alg", strings.Replace(valid1, parts[0], b64(`{"alg":"XX999","kid":"ec-1"}`), 1), tokens.ErrAlgorithm},
		{"expired", idp.sign(t, ecKID, with("exp", now.Add(-time.Minute).Unix()), nil), tokens.ErrExpired},
		{"no exp", idp.sign(t, ecKID, with("exp", nil), nil), tokens.ErrExpired},
		{"not yet valid", idp.sign(t, ecKID, with("nbf", now.Add(5*time.Minute).Unix()), nil), tokens.ErrNotYetValid},
		{"issued in the future", idp.sign(t, ecKID, with("iat", now.Add(5*time.Minute).Unix()), nil), tokens.ErrNotYetValid},
		{"wrong aud", idp.sign(t, ecKID, with("aud", "mcp://elsewhere"), nil), tokens.ErrAudience},
		{"no aud", idp.sign(t, ecKID, with("aud", nil), nil), tokens.ErrAudience},
		{"untrusted iss", idp.sign(t, ecKID, with("iss", "https://evil.test"), nil), tokens.ErrUnknownIssuer},
		{"no iss", idp.sign(t, ecKID, with("iss", nil), nil), tokens.ErrIssuer},
		{"iss of another trusted issuer", idp.sign(t, ecKID, with("iss", other.name), nil), tokens.ErrUnknownKey},
		{"unknown kid", signWith(t, jwt.SigningMethodES256, newECKey(t), "nobody", valid(), nil), tokens.ErrUnknownKey},
		{"kid not a string", idp.sign(t, ecKID, valid(), map[string]any{"kid": 7}), tokens.ErrUnknownKey},
		{"known kid, other key", signWith(t, jwt.SigningMethodES256, newECKey(t), ecKID, valid(), nil), tokens.ErrSignature},
		{"no kid, other key", signWith(t, jwt.SigningMethodES256, newECKey(t), "", valid(), map[string]any{"kid": nil}), tokens.ErrSignature},
		{"tampered payload", parts[0] + "." + b64(`{"iss":"https://idp.test","sub":"admin","aud":"mcp://tools","exp":1999999999}`) + "." + parts[2], tokens.ErrSignature},
		{"stripped signature", parts[0] + "." + parts[1] + ".", tokens.ErrSignature},
		{"garbage", "garbage", tokens.ErrMalformed},
		{"three garbage segments", "a.b.c", tokens.ErrMalformed},
		{"bad base64", "!!!.???.***", tokens.ErrMalformed},
		{"empty", "", tokens.ErrMalformed},
		{"64 KiB", strings.Repeat("a", 64<<10), tokens.ErrMalformed},
		{"64 KiB JWT", parts[0] + "." + parts[1] + strings.Repeat("A", 64<<10) + "." + parts[2], tokens.ErrMalformed},
		{"sub not a string", idp.sign(t, ecKID, with("sub", 42), nil), tokens.ErrMalformed},
		{"scope not a string", idp.sign(t, ecKID, with("scope", []any{"a"}), nil), tokens.ErrMalformed},
		{"bad typ", idp.sign(t, ecKID, valid(), map[string]any{"typ": "txntoken+jwt"}), tokens.ErrType},
		{"typ not a string", idp.sign(t, ecKID, valid(), map[string]any{"typ": 1}), tokens.ErrType},
		{"act too deep", idp.sign(t, ecKID, with("act", deep), nil), tokens.ErrActorChain},
		{"act not an object", idp.sign(t, ecKID, with("act", "agent-3"), nil), tokens.ErrActorChain},
		{"act null", idp.sign(t, ecKID, with("act", map[string]any{"sub": "a", "act": nil}), nil), tokens.ErrActorChain},
		{"act without sub", idp.sign(t, ecKID, with("act", map[string]any{"client": "a"}), nil), tokens.ErrActorChain},
		{"act sub not a string", idp.sign(t, ecKID, with("act", map[string]any{"sub": 3}), nil), tokens.ErrActorChain},
		{"no sub", idp.sign(t, ecKID, with("sub", nil), nil), tokens.ErrMissingSubject},
		{"empty sub", idp.sign(t, ecKID, with("sub", ""), nil), tokens.ErrMissingSubject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.raw)
			if id != nil {
				t.Fatalf("hostile token returned identity %+v", id)
			}
			assertOnlySentinel(t, err, tc.want)
			if tc.raw != "" && strings.Contains(err.Error(), tc.raw) {
				t.Fatal("error message contains the token")
			}
		})
	}

	// The accepted neighbours of the hostile cases.
	for name, raw := range map[string]string{
		"typ JWT":                idp.sign(t, ecKID, valid(), map[string]any{"typ": "JWT"}),
		"typ upper case":         idp.sign(t, ecKID, valid(), map[string]any{"typ": "AT+JWT"}),
		"typ application/at+jwt": idp.sign(t, ecKID, valid(), map[string]any{"typ": "application/at+jwt"}),
		"no typ":                 idp.sign(t, ecKID, valid(), map[string]any{"typ": nil}),
		"no kid":                 idp.sign(t, ecKID, valid(), map[string]any{"kid": nil}),
		"RS256":                  idp.sign(t, "rsa-1", valid(), nil),
		"act at max depth":       idp.sign(t, ecKID, with("act", okDepth), nil),
		"expired within leeway":  idp.sign(t, ecKID, with("exp", now.Add(-20*time.Second).Unix()), nil),
	} {
		t.Run("accepts "+name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), raw); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVerifyCacheNeverOutlivesExp(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	raw := idp.sign(t, ecKID, with(idp.claims(clk.Now()), "exp", clk.Now().Add(2*time.Minute).Unix()), nil)
	first, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	v.Wait()
	clk.Advance(time.Minute)
	cached, err := v.Verify(context.Background(), raw)
	if err != nil || cached != first {
		t.Fatalf("before exp: %v, same identity %v; want the cached identity", err, cached == first)
	}
	// Past exp but within leeway: verified afresh, not served from cache.
	clk.Advance(time.Minute + time.Second)
	fresh, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == first {
		t.Fatal("cached identity returned after exp")
	}
	// Past exp and leeway: rejected.
	clk.Advance(30 * time.Second)
	if id, err := v.Verify(context.Background(), raw); id != nil || !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("after exp+leeway: %v, %v", id, err)
	}
}

func TestVerifyFailuresNotCached(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: clk.Now})
	raw := idp.sign(t, ecKID, with(idp.claims(clk.Now()), "nbf", clk.Now().Add(time.Minute).Unix()), nil)
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, tokens.ErrNotYetValid) {
		t.Fatalf("err = %v", err)
	}
	v.Wait()
	clk.Advance(time.Minute)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("once valid: %v", err)
	}
}

func TestVerifyJWKSFile(t *testing.T) {
	idp := newTestIssuer(t)
	clk := newClock()
	cfg := tokens.IssuerConfig{Issuer: idpName, JWKSFile: filepath.Join("testdata", "jwks.json"), Audiences: []string{idpAudience}}
	v := newVerifier(t, []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{Now: clk.Now})
	if _, err := v.Verify(context.Background(), idp.sign(t, ecKID, idp.claims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	oct := filepath.Join(dir, "oct.json")
	if err := os.WriteFile(oct, []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.JWKSFile = oct
	_, err := tokens.NewVerifier(context.Background(), []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), "trusted_issuers[0].jwks_file: ") || !strings.Contains(err.Error(), "symmetric") {
		t.Fatalf("JWKS with a symmetric key: err = %v", err)
	}
	cfg.JWKSFile = filepath.Join(dir, "missing.json")
	if _, err := tokens.NewVerifier(context.Background(), []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{}); err == nil {
		t.Fatal("missing JWKS file accepted")
	}
}

// jwksServer serves a swappable JWK Set and counts requests.
type jwksServer struct {
	*httptest.Server
	body     atomic.Pointer[[]byte]
	requests atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.body.Store(&body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.body.Load())
	}))
	return s
}

func TestVerifyJWKSURIRefetchAndRotation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := newClock()
	idp := newTestIssuer(t)
	srv := newJWKSServer(t, idp.jwks(t))
	defer srv.Close()
	cfg := tokens.IssuerConfig{Issuer: idpName, JWKSURI: srv.URL + "/jwks.json", Audiences: []string{idpAudience}}
	v, err := tokens.NewVerifier(context.Background(), []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{
		Now: clk.Now, UnknownKIDRate: 10 * time.Second, RefreshInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := context.Background()
	requests := func(want int64) {
		t.Helper()
		if got := srv.requests.Load(); got != want {
			t.Fatalf("JWKS requests = %d, want %d", got, want)
		}
	}
	requests(1) // the start-up fetch
	if _, err := v.Verify(ctx, idp.sign(t, ecKID, idp.claims(clk.Now()), nil)); err != nil {
		t.Fatal(err)
	}
	requests(1)

	// A flood of unknown kids: one refetch per UnknownKIDRate.
	stranger := newECKey(t)
	for i := range 20 {
		raw := signWith(t, jwt.SigningMethodES256, stranger, "unknown-"+string(rune('a'+i)), idp.claims(clk.Now()), nil)
		if _, err := v.Verify(ctx, raw); !errors.Is(err, tokens.ErrUnknownKey) {
			t.Fatalf("unknown kid: err = %v", err)
		}
	}
	requests(2)
	clk.Advance(9 * time.Second)
	if _, err := v.Verify(ctx, signWith(t, jwt.SigningMethodES256, stranger, "unknown-z", idp.claims(clk.Now()), nil)); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	requests(2)

	// The issuer rotates to a new key; the next allowed refetch finds it.
	idp.keys["ec-2"] = newECKey(t)
	next := idp.jwks(t, "ec-2")
	srv.body.Store(&next)
	rotated := idp.sign(t, "ec-2", idp.claims(clk.Now()), nil)
	if _, err := v.Verify(ctx, rotated); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Fatalf("before the rate interval: err = %v", err)
	}
	requests(2)
	clk.Advance(time.Second)
	id, err := v.Verify(ctx, rotated)
	if err != nil {
		t.Fatalf("rotated key not picked up: %v", err)
	}
	if id.User != "user-7" {
		t.Fatalf("identity = %+v", id)
	}
	requests(3)
	// The old key left the issuer's set: its fresh tokens no longer verify.
	if _, err := v.Verify(ctx, idp.sign(t, ecKID, with(idp.claims(clk.Now()), "jti", "new"), nil)); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Fatalf("retired issuer key: err = %v", err)
	}
	requests(3)
}

func TestVerifyJWKSURIUnreachableAtStart(t *testing.T) {
	clk := newClock()
	idp := newTestIssuer(t)
	var up atomic.Bool
	jwks := idp.jwks(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write(jwks)
	}))
	defer srv.Close()
	cfg := tokens.IssuerConfig{Issuer: idpName, JWKSURI: srv.URL, Audiences: []string{idpAudience}}
	v := newVerifier(t, []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{Now: clk.Now})
	raw := idp.sign(t, ecKID, idp.claims(clk.Now()), nil)
	up.Store(true)
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
}

func TestIssuerConfigValidate(t *testing.T) {
	ok := tokens.IssuerConfig{Issuer: idpName, JWKSFile: filepath.Join("testdata", "jwks.json"), Audiences: []string{"a"}}
	for _, tc := range []struct {
		name   string
		change func(*tokens.IssuerConfig)
		want   string
	}{
		{"valid", func(c *tokens.IssuerConfig) {}, ""},
		{"valid uri", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "https://idp.example/jwks" }, ""},
		{"loopback http", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "http://127.0.0.1:8080/jwks" }, ""},
		{"localhost http", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "http://localhost/jwks" }, ""},
		{"ipv6 loopback", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "http://[::1]:9/jwks" }, ""},
		{"all good algs", func(c *tokens.IssuerConfig) { c.Algorithms = []string{"ES256", "ES384", "PS256", "EdDSA"} }, ""},
		{"no issuer", func(c *tokens.IssuerConfig) { c.Issuer = "" }, "issuer: must not be empty"},
		{"no source", func(c *tokens.IssuerConfig) { c.JWKSFile = "" }, "jwks_file: exactly one of jwks_file and jwks_uri must be set (found 0 key sources)"},
		{"two sources", func(c *tokens.IssuerConfig) { c.JWKSURI = "https://idp.example/jwks" }, "jwks_file: exactly one of jwks_file and jwks_uri must be set (found 2 key sources)"},
		{"inline and file", func(c *tokens.IssuerConfig) { c.JWKS = []byte("{}") }, "jwks_file: exactly one of jwks_file and jwks_uri must be set (found 2 key sources)"},
		{"plain http", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "http://idp.example/jwks" }, "jwks_uri: must use https unless the host is loopback"},
		{"relative uri", func(c *tokens.IssuerConfig) { c.JWKSFile, c.JWKSURI = "", "/jwks" }, `jwks_uri: "/jwks" is not an absolute URL`},
		{"no audience", func(c *tokens.IssuerConfig) { c.Audiences = nil }, "audiences: at least one audience is required"},
		{"empty audience", func(c *tokens.IssuerConfig) { c.Audiences = []string{"a", " "} }, "audiences[1]: must not be empty"},
		{"HS256", func(c *tokens.IssuerConfig) { c.Algorithms = []string{"ES256", "HS256"} }, `algorithms: "HS256" is not allowed (symmetric)`},
		{"hs512", func(c *tokens.IssuerConfig) { c.Algorithms = []string{"hs512"} }, `algorithms: "hs512" is not allowed (symmetric)`},
		{"none", func(c *tokens.IssuerConfig) { c.Algorithms = []string{"none"} }, `algorithms: "none" is not allowed (unsigned)`},
		{"unknown", func(c *tokens.IssuerConfig) { c.Algorithms = []string{"ES999"} }, `algorithms: "ES999" is not supported (want ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512 or EdDSA)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
	_, err := tokens.NewVerifier(context.Background(), []tokens.IssuerConfig{ok, {Issuer: "x", JWKSFile: "f", Algorithms: []string{"HS256"}, Audiences: []string{"a"}}}, tokens.VerifierOptions{})
	if err == nil || err.Error() != `trusted_issuers[1].algorithms: "HS256" is not allowed (symmetric)` {
		t.Fatalf("NewVerifier err = %v", err)
	}
	var ce *tokens.ConfigError
	if !errors.As(err, &ce) || ce.Field != "algorithms" {
		t.Fatalf("err does not carry a ConfigError for algorithms: %v", err)
	}
}
