package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// IssuerConfig is one trusted issuer of inbound tokens: an enterprise IdP, or
// writ's development issuer.
type IssuerConfig struct {
	// Issuer is the exact iss of the issuer's tokens.
	Issuer string `yaml:"issuer"`
	// JWKSFile is a JWK Set file, read once at start.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURI is a JWK Set URL, fetched at start, refreshed periodically
	// and refetched (rate-limited) when a token names an unknown kid. It
	// must be https unless the host is loopback.
	JWKSURI string `yaml:"jwks_uri"`
	// Audiences accepted in aud; at least one.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the allowlist of signing algorithms; default
	// [ES256, RS256]. "none" and HMAC (HS*) are refused.
	Algorithms []string `yaml:"algorithms"`
	// TenantClaim names the claim holding the tenant; default "tenant".
	TenantClaim string `yaml:"tenant_claim"`
	// JWKS is an inline key set (the development issuer's).
	JWKS []byte `yaml:"-"`
	// KeySet is a live key set, read again whenever it changes: writ's own
	// signing keys (Keyring.JWKS), so tokens from writ's token endpoint
	// verify across key rotations.
	KeySet func() []byte `yaml:"-"`
	// RefuseClaims are claims whose presence refuses a token (ErrType):
	// writ's own per-request tokens carry decision_id and are meant for the
	// upstream alone, so they never come back as an agent's credential.
	RefuseClaims []string `yaml:"-"`
	// Dev marks identities from this issuer as Dev.
	Dev bool `yaml:"-"`
}

// ConfigError is a configuration problem in one field. Its message starts
// with the field's YAML name, so a caller can prefix the field's path, as in
// "trusted_issuers[0]." + err.Error().
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Problem }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

var defaultAlgorithms = []string{"ES256", "RS256"}

// Validate checks c: a non-empty issuer, exactly one key source, at least
// one audience, an https (or loopback) jwks_uri, and an allowlist of
// asymmetric algorithms only.
func (c IssuerConfig) Validate() error {
	if strings.TrimSpace(c.Issuer) == "" {
		return configErr("issuer", "must not be empty")
	}
	sources := 0
	for _, set := range []bool{c.JWKSFile != "", c.JWKSURI != "", len(c.JWKS) > 0, c.KeySet != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return configErr("jwks_file", "exactly one of jwks_file and jwks_uri must be set (found %d key sources)", sources)
	}
	if c.JWKSURI != "" {
		if err := validateJWKSURI(c.JWKSURI); err != nil {
			return err
		}
	}
	if len(c.Audiences) == 0 {
		return configErr("audiences", "at least one audience is required")
	}
	for i, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			return configErr(fmt.Sprintf("audiences[%d]", i), "must not be empty")
		}
	}
	for _, alg := range c.Algorithms {
		if why := forbiddenAlgorithm(alg); why != "" {
			return configErr("algorithms", "%q is not allowed (%s)", alg, why)
		}
		if _, ok := verifyMethods[alg]; !ok {
			return configErr("algorithms", "%q is not supported (want ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512 or EdDSA)", alg)
		}
	}
	return nil
}

func validateJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return configErr("jwks_uri", "%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return configErr("jwks_uri", "must use https unless the host is loopback")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDefaults fills the documented defaults.
func (c IssuerConfig) withDefaults() IssuerConfig {
	if len(c.Algorithms) == 0 {
		c.Algorithms = defaultAlgorithms
	}
	if c.TenantClaim == "" {
		c.TenantClaim = "tenant"
	}
	return c
}

// maxJWKSBytes bounds a JWK Set file or response.
const maxJWKSBytes = 1 << 20

// parseJWKS loads a JWK Set document into memory storage. Symmetric keys
// are refused outright; private keys are reduced to their public half by
// the key lookup.
func parseJWKS(raw []byte) (*jwkset.MemoryJWKSet, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %v", err)
	}
	for i, k := range set.Keys {
		if k.KTY == jwkset.KtyOct {
			return nil, fmt.Errorf("keys[%d] is a symmetric (oct) key", i)
		}
	}
	keys, err := set.JWKSlice()
	if err != nil {
		return nil, err
	}
	mem := jwkset.NewMemoryStorage()
	if err := mem.KeyReplaceAll(context.Background(), keys); err != nil {
		return nil, err
	}
	return mem, nil
}

// keySource finds an issuer's verification keys by kid.
type keySource struct {
	keys *jwkset.MemoryJWKSet

	// Remote key sets only.
	url     string
	client  *http.Client
	minWait time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu          sync.Mutex
	lastRefetch time.Time // guarded by mu

	// Live key sets only.
	live    func() []byte
	liveSet atomic.Pointer[liveKeys]
}

// liveKeys is a parsed copy of a live key set and the bytes it came from.
type liveKeys struct {
	raw []byte
	set *jwkset.MemoryJWKSet
}

func newLiveKeySource(f func() []byte) (*keySource, error) {
	s := &keySource{live: f}
	if _, err := s.set(); err != nil {
		return nil, configErr("jwks", "%v", err)
	}
	return s, nil
}

// set returns the key set to read: a live set is parsed again when its
// bytes have changed since the last read.
func (s *keySource) set() (*jwkset.MemoryJWKSet, error) {
	if s.live == nil {
		return s.keys, nil
	}
	raw := s.live()
	if cur := s.liveSet.Load(); cur != nil && bytes.Equal(cur.raw, raw) {
		return cur.set, nil
	}
	mem, err := parseJWKS(raw)
	if err != nil {
		return nil, err
	}
	s.liveSet.Store(&liveKeys{raw: raw, set: mem})
	return mem, nil
}

func newFileKeySource(cfg IssuerConfig) (*keySource, error) {
	raw := cfg.JWKS
	field := "jwks"
	if cfg.JWKSFile != "" {
		field = "jwks_file"
		f, err := os.Open(cfg.JWKSFile)
		if err != nil {
			return nil, configErr(field, "%v", err)
		}
		raw, err = readAllLimit(f, maxJWKSBytes)
		f.Close()
		if err != nil {
			return nil, configErr(field, "%s: %v", cfg.JWKSFile, err)
		}
	}
	mem, err := parseJWKS(raw)
	if err != nil {
		return nil, configErr(field, "%v", err)
	}
	return &keySource{keys: mem}, nil
}

// refetch replaces the key set with a fresh copy from the issuer. jwkset
// fetches and parses; on failure the previous keys stay.
func (s *keySource) refetch(ctx context.Context) error {
	_, err := jwkset.NewStorageFromHTTP(s.url, jwkset.HTTPClientStorageOptions{
		Client:      s.client,
		Ctx:         ctx,
		HTTPTimeout: 10 * time.Second,
		Storage:     s.keys,
	})
	return err
}

// mayRefetch claims the right to refetch on an unknown kid: at most once
// per minWait.
func (s *keySource) mayRefetch() bool {
	if s.url == "" {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastRefetch.IsZero() && now.Sub(s.lastRefetch) < s.minWait {
		return false
	}
	s.lastRefetch = now
	return true
}

// key returns the public key for kid that may verify alg.
func (s *keySource) key(ctx context.Context, kid, alg string) (any, error) {
	keys, err := s.set()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	jwk, err := keys.KeyRead(ctx, kid)
	if errors.Is(err, jwkset.ErrKeyNotFound) && s.mayRefetch() {
		if ferr := s.refetch(ctx); ferr != nil {
			s.logger.WarnContext(ctx, "jwks refetch failed", "jwks_uri", s.url, "error", ferr)
		}
		jwk, err = s.keys.KeyRead(ctx, kid)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: no key with kid %q", ErrUnknownKey, truncate(kid, 64))
	}
	m := jwk.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, fmt.Errorf("%w: key %q is not a signing key", ErrUnknownKey, truncate(kid, 64))
	}
	if m.ALG != "" && string(m.ALG) != alg {
		return nil, fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, truncate(kid, 64), m.ALG, truncate(alg, 16))
	}
	pub := publicKey(jwk.Key())
	if !keyFits(alg, pub) {
		return nil, fmt.Errorf("%w: key %q cannot verify %s", ErrAlgorithm, truncate(kid, 64), truncate(alg, 16))
	}
	return pub, nil
}

// anyKey serves a token without kid: every key that fits alg.
func (s *keySource) anyKey(ctx context.Context, alg string) (any, error) {
	keys, err := s.set()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	all, err := keys.KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	var set jwt.VerificationKeySet
	for _, jwk := range all {
		m := jwk.Marshal()
		if (m.USE != "" && m.USE != jwkset.UseSig) || (m.ALG != "" && string(m.ALG) != alg) {
			continue
		}
		if pub := publicKey(jwk.Key()); keyFits(alg, pub) {
			set.Keys = append(set.Keys, pub)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: token has no kid and no key fits %s", ErrUnknownKey, truncate(alg, 16))
	}
	return set, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
