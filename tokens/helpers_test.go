package tokens_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// epoch is the fixed start of every injected clock.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is an injected, manually advanced clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKEK(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openKeyring(t testing.TB, db *store.DB, opts tokens.KeyringOptions) *tokens.Keyring {
	t.Helper()
	k, err := tokens.OpenKeyring(context.Background(), db, testKEK(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testIssuer is a fake identity provider with one or more signing keys.
type testIssuer struct {
	name string
	keys map[string]crypto.Signer // by kid
}

const (
	idpName     = "https://idp.test"
	idpAudience = "mcp://tools"
	ecKID       = "ec-1"
)

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	return &testIssuer{name: idpName, keys: map[string]crypto.Signer{ecKID: loadFixtureKey(t)}}
}

// loadFixtureKey reads the fixed ES256 key in testdata.
func loadFixtureKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "issuer-es256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("testdata/issuer-es256.pem: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key.(*ecdsa.PrivateKey)
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwks renders the public keys of the given kids (all when none given).
func (ti *testIssuer) jwks(t testing.TB, kids ...string) []byte {
	t.Helper()
	if len(kids) == 0 {
		for kid := range ti.keys {
			kids = append(kids, kid)
		}
	}
	set := jwkset.NewMemoryStorage()
	for _, kid := range kids {
		pub := ti.keys[kid].Public()
		alg := jwkset.AlgES256
		if _, ok := pub.(*rsa.PublicKey); ok {
			alg = jwkset.AlgRS256
		}
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := set.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (ti *testIssuer) config(t testing.TB) tokens.IssuerConfig {
	return tokens.IssuerConfig{Issuer: ti.name, JWKS: ti.jwks(t), Audiences: []string{idpAudience}}
}

// claims returns a valid delegated claim set at now.
func (ti *testIssuer) claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       ti.name,
		"sub":       "user-7",
		"aud":       idpAudience,
		"iat":       now.Add(-time.Minute).Unix(),
		"nbf":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"client_id": "agent-3",
		"act":       map[string]any{"sub": "agent-3"},
		"scope":     "tools.call tools.list",
		"tenant":    "tenant-a",
	}
}

// sign signs claims with the key kid names, using its natural algorithm,
// and applies header overrides (a nil value deletes the header).
func (ti *testIssuer) sign(t testing.TB, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	key := ti.keys[kid]
	var method jwt.SigningMethod = jwt.SigningMethodES256
	if _, ok := key.(*rsa.PrivateKey); ok {
		method = jwt.SigningMethodRS256
	}
	return signWith(t, method, key, kid, claims, header)
}

func signWith(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, issuers []tokens.IssuerConfig, opts tokens.VerifierOptions) *tokens.Verifier {
	t.Helper()
	v, err := tokens.NewVerifier(context.Background(), issuers, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// decodeJSON decodes raw JSON into a generic value, for comparisons.
func decodeJSON(t testing.TB, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

func newECKey384(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// b64 encodes a JWS segment.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// with returns claims with one claim set (or removed, for nil).
func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}
