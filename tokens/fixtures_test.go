package tokens_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/tokens"
)

var update = flag.Bool("update", false, "rewrite testdata/jwks.json and the seed tokens in testdata/tokens")

// seedTokens are the fuzz seeds in testdata/tokens, each with the result
// Verify must give at the fixture clock (epoch). nil means accepted.
var seedTokens = map[string]error{
	"valid":         nil,
	"deep-act":      tokens.ErrActorChain,
	"alg-none":      tokens.ErrAlgorithm,
	"hs256-pubkey":  tokens.ErrAlgorithm,
	"expired":       tokens.ErrExpired,
	"wrong-aud":     tokens.ErrAudience,
	"untrusted-iss": tokens.ErrUnknownIssuer,
	"unknown-kid":   tokens.ErrUnknownKey,
	"bad-typ":       tokens.ErrType,
	"forged":        tokens.ErrSignature,
	"garbage":       tokens.ErrMalformed,
}

// fixtureVerifier trusts the fixture issuer (testdata/jwks.json) at epoch.
func fixtureVerifier(t testing.TB) *tokens.Verifier {
	cfg := tokens.IssuerConfig{Issuer: idpName, JWKSFile: filepath.Join("testdata", "jwks.json"), Audiences: []string{idpAudience}}
	return newVerifier(t, []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{Now: func() time.Time { return epoch }})
}

func writeSeeds(t *testing.T) {
	idp := newTestIssuer(t)
	if err := os.WriteFile(filepath.Join("testdata", "jwks.json"), append(idp.jwks(t, ecKID), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	valid := idp.claims(epoch)
	deep := map[string]any{"sub": "a7"}
	for _, s := range []string{"a6", "a5", "a4", "a3", "a2", "a1"} {
		deep = map[string]any{"sub": s, "act": deep}
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(idp.keys[ecKID].Public())
	if err != nil {
		t.Fatal(err)
	}
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	seeds := map[string]string{
		"valid":         idp.sign(t, ecKID, valid, nil),
		"deep-act":      idp.sign(t, ecKID, with(valid, "act", deep), nil),
		"alg-none":      none,
		"hs256-pubkey":  signWith(t, jwt.SigningMethodHS256, publicPEM, ecKID, valid, nil),
		"expired":       idp.sign(t, ecKID, with(valid, "exp", epoch.Add(-time.Hour).Unix()), nil),
		"wrong-aud":     idp.sign(t, ecKID, with(valid, "aud", "mcp://other"), nil),
		"untrusted-iss": idp.sign(t, ecKID, with(valid, "iss", "https://evil.test"), nil),
		"unknown-kid":   signWith(t, jwt.SigningMethodES256, newECKey(t), "nobody", valid, nil),
		"bad-typ":       idp.sign(t, ecKID, valid, map[string]any{"typ": "txntoken+jwt"}),
		"forged":        signWith(t, jwt.SigningMethodES256, newECKey(t), ecKID, valid, nil),
		"garbage":       "eyJhbGciOiJFUzI1NiJ9.not-json.sig",
	}
	dir := filepath.Join("testdata", "tokens")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, raw := range seeds {
		if err := os.WriteFile(filepath.Join(dir, name+".jwt"), []byte(raw+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readSeeds(t testing.TB) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for name := range seedTokens {
		raw, err := os.ReadFile(filepath.Join("testdata", "tokens", name+".jwt"))
		if err != nil {
			t.Fatalf("%v (run go test -run TestSeedTokens -update)", err)
		}
		out[name] = strings.TrimSpace(string(raw))
	}
	return out
}

// TestSeedTokens checks that every fuzz seed still means what its name says.
func TestSeedTokens(t *testing.T) {
	if *update {
		writeSeeds(t)
	}
	v := fixtureVerifier(t)
	for name, raw := range readSeeds(t) {
		t.Run(name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), raw)
			want := seedTokens[name]
			if want == nil {
				if err != nil || id.User != "user-7" || id.Agent != "agent-3" {
					t.Fatalf("valid seed: %+v, %v", id, err)
				}
				return
			}
			if id != nil || !errors.Is(err, want) {
				t.Fatalf("got %+v, %v; want %v", id, err, want)
			}
		})
	}
}
