package tokens_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/tokens"
)

const writIssuer = "https://writ.test"

type mintFixture struct {
	clk    *clock
	keys   *tokens.Keyring
	minter *tokens.Minter
}

func newMintFixture(t testing.TB, alg string) *mintFixture {
	t.Helper()
	clk := newClock()
	keys := openKeyring(t, openDB(t, t.TempDir()), tokens.KeyringOptions{Algorithm: alg, Now: clk.Now})
	m, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: writIssuer, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &mintFixture{clk: clk, keys: keys, minter: m}
}

// parseMinted verifies a minted token against the keyring's published JWKS
// with keyfunc and golang-jwt, as a resource server would.
func parseMinted(t *testing.T, f *mintFixture, token string, alg string) (*jwt.Token, jwt.MapClaims) {
	t.Helper()
	kf, err := keyfunc.NewJWKSetJSON(f.keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(writIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(f.clk.Now),
	).ParseWithClaims(token, claims, kf.Keyfunc)
	if err != nil {
		t.Fatalf("minted token does not verify against the JWKS: %v", err)
	}
	return tok, claims
}

func mintRequest() tokens.MintRequest {
	return tokens.MintRequest{
		User:       "user-7",
		Agent:      "agent-3",
		Tenant:     "tenant-a",
		Actors:     []string{"agent-3", "orchestrator"},
		Audience:   "https://tickets.internal",
		Scopes:     []string{"tickets:write", "tickets:read"},
		TTL:        time.Minute,
		DecisionID: "dec-1",
		ApprovalID: "apr-1",
	}
}

func TestMintAccessToken(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			f := newMintFixture(t, alg)
			req := mintRequest()
			req.Dev = true
			minted, err := f.minter.Mint(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			tok, claims := parseMinted(t, f, minted.Token.Reveal(), alg)
			if tok.Header["typ"] != "at+jwt" || tok.Header["kid"] != f.keys.CurrentKeyID() || tok.Header["alg"] != alg {
				t.Fatalf("header = %v", tok.Header)
			}
			now := float64(epoch.Unix())
			want := jwt.MapClaims{
				"iss":         writIssuer,
				"sub":         "user-7",
				"aud":         []any{"https://tickets.internal"},
				"iat":         now,
				"nbf":         now,
				"exp":         now + 60,
				"jti":         minted.JTI,
				"client_id":   "agent-3",
				"scope":       "tickets:read tickets:write",
				"act":         map[string]any{"sub": "agent-3", "act": map[string]any{"sub": "orchestrator"}},
				"tenant":      "tenant-a",
				"decision_id": "dec-1",
				"approval_id": "apr-1",
				"dev":         true,
			}
			if diff := cmp.Diff(want, claims); diff != "" {
				t.Fatalf("claims (-want +got):\n%s", diff)
			}
			if len(minted.JTI) < 22 {
				t.Fatalf("jti %q carries fewer than 128 bits", minted.JTI)
			}
			wantMinted := tokens.Minted{
				Token: minted.Token, JTI: minted.JTI, KeyID: f.keys.CurrentKeyID(), Audience: "https://tickets.internal",
				Scopes: []string{"tickets:read", "tickets:write"}, Profile: tokens.AccessToken,
				IssuedAt: epoch, ExpiresAt: epoch.Add(time.Minute),
			}
			if diff := cmp.Diff(wantMinted, minted); diff != "" {
				t.Fatalf("Minted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMintAccessTokenOptionalClaims(t *testing.T) {
	f := newMintFixture(t, "ES256")
	// An agent acting for itself, no approval, not dev.
	minted, err := f.minter.Mint(context.Background(), tokens.MintRequest{Agent: "agent-3", Audience: "aud", DecisionID: "dec-2"})
	if err != nil {
		t.Fatal(err)
	}
	_, claims := parseMinted(t, f, minted.Token.Reveal(), "ES256")
	if claims["sub"] != "agent-3" || claims["client_id"] != "agent-3" {
		t.Fatalf("sub/client_id = %v/%v, want the agent", claims["sub"], claims["client_id"])
	}
	for _, absent := range []string{"approval_id", "dev", "act", "tenant", "scope"} {
		if _, ok := claims[absent]; ok {
			t.Errorf("claim %s present: %v", absent, claims[absent])
		}
	}
}

func TestMintTxnToken(t *testing.T) {
	f := newMintFixture(t, "ES256")
	req := mintRequest()
	req.Profile = tokens.TxnToken
	minted, err := f.minter.Mint(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if minted.Profile != tokens.TxnToken {
		t.Fatalf("profile = %q", minted.Profile)
	}
	tok, claims := parseMinted(t, f, minted.Token.Reveal(), "ES256")
	if tok.Header["typ"] != "txntoken+jwt" || tok.Header["kid"] != f.keys.CurrentKeyID() {
		t.Fatalf("header = %v", tok.Header)
	}
	now := float64(epoch.Unix())
	want := jwt.MapClaims{
		"iss":   writIssuer,
		"iat":   now,
		"exp":   now + 60,
		"aud":   []any{"https://tickets.internal"},
		"txn":   minted.JTI,
		"jti":   minted.JTI,
		"sub":   "user-7",
		"scope": "tickets:read tickets:write",
		"tctx": map[string]any{
			"tenant":      "tenant-a",
			"decision_id": "dec-1",
			"approval_id": "apr-1",
			"actors":      []any{"agent-3", "orchestrator"},
		},
		"req_wl": "agent-3",
	}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Fatalf("claims (-want +got):\n%s", diff)
	}
}

func TestMintTTL(t *testing.T) {
	f := newMintFixture(t, "ES256")
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{0, 5 * time.Minute},
		{90 * time.Second, 90 * time.Second},
		{time.Hour, 5 * time.Minute},
		{5 * time.Minute, 5 * time.Minute},
	} {
		req := mintRequest()
		req.TTL = tc.ttl
		minted, err := f.minter.Mint(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := parseMinted(t, f, minted.Token.Reveal(), "ES256")
		exp, _ := claims.GetExpirationTime()
		iat, _ := claims.GetIssuedAt()
		if got := exp.Sub(iat.Time); got != tc.want || minted.ExpiresAt.Sub(minted.IssuedAt) != tc.want {
			t.Errorf("TTL %v: lifetime %v (Minted %v), want %v", tc.ttl, got, minted.ExpiresAt.Sub(minted.IssuedAt), tc.want)
		}
	}
	req := mintRequest()
	req.TTL = -time.Second
	if _, err := f.minter.Mint(context.Background(), req); !errors.Is(err, tokens.ErrMintRequest) {
		t.Fatalf("negative TTL: err = %v", err)
	}
}

func TestMintCacheReuse(t *testing.T) {
	f := newMintFixture(t, "ES256")
	ctx := context.Background()
	req := mintRequest()
	req.TTL = 3 * time.Minute // reuse window: 2 minutes
	first, err := f.minter.Mint(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Reused {
		t.Fatal("first mint marked reused")
	}
	f.minter.Wait()

	// Same call, scopes in another order, a later decision: the same token.
	f.clk.Advance(119 * time.Second)
	again := req
	again.Scopes = []string{"tickets:read", "tickets:write", "tickets:read"}
	again.DecisionID = "dec-2"
	second, err := f.minter.Mint(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Reused || second.Token.Reveal() != first.Token.Reveal() || second.JTI != first.JTI {
		t.Fatalf("within 2/3 of the lifetime: reused=%v, same token=%v", second.Reused, second.Token.Reveal() == first.Token.Reveal())
	}
	_, claims := parseMinted(t, f, second.Token.Reveal(), "ES256")
	if claims["decision_id"] != "dec-1" {
		t.Fatalf("reused token's decision_id = %v, want the minting decision's", claims["decision_id"])
	}

	// Two thirds gone: a fresh token.
	f.clk.Advance(time.Second)
	third, err := f.minter.Mint(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reused || third.JTI == first.JTI || third.Token.Reveal() == first.Token.Reveal() {
		t.Fatal("after 2/3 of the lifetime the old token was served")
	}
	if !third.IssuedAt.Equal(epoch.Add(2 * time.Minute)) {
		t.Fatalf("fresh token iat = %v", third.IssuedAt)
	}
}

func TestMintCacheKeyedByRequest(t *testing.T) {
	f := newMintFixture(t, "ES256")
	ctx := context.Background()
	base := mintRequest()
	first, err := f.minter.Mint(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	f.minter.Wait()
	variants := map[string]func(r *tokens.MintRequest){
		"scopes":   func(r *tokens.MintRequest) { r.Scopes = []string{"tickets:read"} },
		"approval": func(r *tokens.MintRequest) { r.ApprovalID = "apr-2" },
		"user":     func(r *tokens.MintRequest) { r.User = "user-8" },
		"agent":    func(r *tokens.MintRequest) { r.Agent = "agent-4" },
		"actors":   func(r *tokens.MintRequest) { r.Actors = []string{"agent-3"} },
		"tenant":   func(r *tokens.MintRequest) { r.Tenant = "tenant-b" },
		"audience": func(r *tokens.MintRequest) { r.Audience = "https://other" },
		"profile":  func(r *tokens.MintRequest) { r.Profile = tokens.TxnToken },
		"dev":      func(r *tokens.MintRequest) { r.Dev = true },
		"ttl":      func(r *tokens.MintRequest) { r.TTL = 2 * time.Minute },
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			req := base
			change(&req)
			got, err := f.minter.Mint(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Reused || got.JTI == first.JTI {
				t.Fatalf("a request differing in %s reused the token", name)
			}
		})
	}
	// The unchanged request still hits.
	same, err := f.minter.Mint(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if !same.Reused || same.JTI != first.JTI {
		t.Fatal("identical request missed the cache")
	}
	// A rotation starts fresh tokens signed by the new key.
	kid, err := f.keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := f.minter.Mint(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Reused || rotated.KeyID != kid {
		t.Fatalf("after rotation: reused=%v kid=%q, want a fresh token under %q", rotated.Reused, rotated.KeyID, kid)
	}
}

func TestMintRejects(t *testing.T) {
	f := newMintFixture(t, "ES256")
	for name, tc := range map[string]struct {
		req  tokens.MintRequest
		want error
	}{
		"no subject":  {tokens.MintRequest{Audience: "a"}, tokens.ErrMintRequest},
		"no audience": {tokens.MintRequest{User: "u", Agent: "a"}, tokens.ErrMintRequest},
		"bad profile": {tokens.MintRequest{User: "u", Audience: "a", Profile: "id_token"}, tokens.ErrProfile},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.minter.Mint(context.Background(), tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestMintScopeTokens: each scope is one RFC 6749 scope-token
// (%x21 / %x23-5B / %x5D-7E); anything else would change what the
// space-separated scope claim grants.
func TestMintScopeTokens(t *testing.T) {
	f := newMintFixture(t, "ES256")
	for _, bad := range []string{
		"",
		"mcp:tools:x mcp:tools:delete_repo",
		"tab\there",
		"new\nline",
		"nul\x00",
		`quote"d`,
		`back\slash`,
		"del\x7f",
		"caf\u00e9",
		"no\u00a0break",
		"x\u3000y",
	} {
		t.Run("refuses "+strconv.Quote(bad), func(t *testing.T) {
			_, err := f.minter.Mint(context.Background(), tokens.MintRequest{User: "u", Audience: "a", Scopes: []string{"ok", bad}})
			if !errors.Is(err, tokens.ErrMintRequest) {
				t.Fatalf("err = %v, want ErrMintRequest", err)
			}
			if bad != "" && strings.Contains(err.Error(), bad) {
				t.Errorf("error %q echoes the scope", err)
			}
		})
	}
	// Every allowed byte, and the ends of each range.
	var all []byte
	for c := byte(0x21); c <= 0x7e; c++ {
		if c != '"' && c != '\\' {
			all = append(all, c)
		}
	}
	for _, good := range []string{"!", "#", "[", "]", "~", "mcp:tools:search_issues", "mcp:resources:file%3A%2F%2F%2Fa", string(all)} {
		t.Run("accepts "+strconv.Quote(good), func(t *testing.T) {
			m, err := f.minter.Mint(context.Background(), tokens.MintRequest{User: "u", Audience: "a", Scopes: []string{good}})
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Scopes) != 1 || m.Scopes[0] != good {
				t.Errorf("scopes = %q", m.Scopes)
			}
		})
	}
}

func TestNewMinterChecksRetain(t *testing.T) {
	keys := openKeyring(t, openDB(t, t.TempDir()), tokens.KeyringOptions{Retain: time.Minute})
	_, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: writIssuer, MaxTTL: 5 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "retain") {
		t.Fatalf("err = %v, want a retain error", err)
	}
	if _, err := tokens.NewMinter(keys, tokens.MinterOptions{MaxTTL: time.Minute}); err == nil {
		t.Fatal("minter without issuer accepted")
	}
}

func TestParseProfile(t *testing.T) {
	for in, want := range map[string]tokens.Profile{"": tokens.AccessToken, "access_token": tokens.AccessToken, "txn_token": tokens.TxnToken} {
		if got, err := tokens.ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := tokens.ParseProfile("jwt"); !errors.Is(err, tokens.ErrProfile) {
		t.Errorf("ParseProfile(jwt) err = %v", err)
	}
}
