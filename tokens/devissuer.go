package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// DevIssuerName is the iss of development tokens.
const DevIssuerName = "urn:writ:dev"

// DevIssuerKeyFile is the development issuer's key file inside the data
// directory.
const DevIssuerKeyFile = "dev-issuer.key"

// DevIssuer mints delegated test tokens so writ can be tried without an
// identity provider. writ trusts it only when started in development mode,
// and identities it vouches for are marked Dev.
type DevIssuer struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks []byte
	now  func() time.Time
}

// OpenDevIssuer loads the development issuer's ES256 key from
// <dataDir>/dev-issuer.key (PKCS#8 PEM, mode 0600), creating it on first use.
func OpenDevIssuer(dataDir string) (*DevIssuer, error) {
	path := filepath.Join(dataDir, DevIssuerKeyFile)
	key, err := readDevKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createDevKey(path)
		if errors.Is(err, fs.ErrExist) {
			key, err = readDevKey(path)
		}
	}
	if err != nil {
		return nil, err
	}
	kid, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.AlgES256, KID: kid, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer JWK: %w", err)
	}
	set := jwkset.NewMemoryStorage()
	if err := set.KeyWrite(context.Background(), jwk); err != nil {
		return nil, fmt.Errorf("tokens: development issuer JWK: %w", err)
	}
	jwks, err := set.JSONPublic(context.Background())
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer JWKS: %w", err)
	}
	return &DevIssuer{key: key, kid: kid, jwks: jwks, now: time.Now}, nil
}

func readDevKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := readPrivateFile(path, 16<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("tokens: development issuer key %s: not a PKCS#8 PEM private key", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer key %s: %v", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("tokens: development issuer key %s: not a P-256 key", path)
	}
	return key, nil
}

func createDevKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tokens: development issuer key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(data)
	if err := createPrivateFile(path, data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("tokens: development issuer key: %w", err)
	}
	return key, nil
}

// DevTokenRequest describes a development token.
type DevTokenRequest struct {
	// User is the subject. Without a user the token is the agent's own.
	User, Agent, Tenant, Audience string
	Scopes                        []string
	// TTL is the lifetime; default 1h.
	TTL time.Duration
}

// Token mints a delegated token: sub the user, act {sub: agent}, client_id
// the agent, tenant, scope and aud.
func (d *DevIssuer) Token(r DevTokenRequest) (Secret, error) {
	if r.Agent == "" {
		return "", errors.New("tokens: a development token needs an agent")
	}
	if r.Audience == "" {
		return "", errors.New("tokens: a development token needs an audience")
	}
	if r.TTL == 0 {
		r.TTL = time.Hour
	}
	if r.TTL < 0 {
		return "", errors.New("tokens: a development token's TTL must be positive")
	}
	jti, err := newJTI()
	if err != nil {
		return "", err
	}
	now := d.now().Truncate(time.Second)
	claims := &accessTokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    DevIssuerName,
			Subject:   r.Agent,
			Audience:  jwt.ClaimStrings{r.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(r.TTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID: r.Agent,
		Scope:    strings.Join(slices.Compact(slices.Sorted(slices.Values(r.Scopes))), " "),
		Tenant:   r.Tenant,
	}
	if r.User != "" {
		claims.Subject = r.User
		claims.Act = &actClaim{Sub: r.Agent}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["typ"] = accessTokenType
	tok.Header["kid"] = d.kid
	signed, err := tok.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("tokens: sign development token: %w", err)
	}
	return Secret(signed), nil
}

// IssuerConfig returns the trusted-issuer entry for the development issuer:
// its inline JWKS, ES256 only, identities marked Dev.
func (d *DevIssuer) IssuerConfig(audiences []string) IssuerConfig {
	return IssuerConfig{
		Issuer:     DevIssuerName,
		JWKS:       slices.Clone(d.jwks),
		Audiences:  slices.Clone(audiences),
		Algorithms: []string{ES256},
		Dev:        true,
	}
}
