package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenSize is the largest inbound token Verify parses, in bytes.
const MaxTokenSize = 16 << 10

// Identity is what a verified inbound token says: who the user is, which
// agent acts for them, in which tenant. Treat it as read-only: Verify may
// return the same *Identity for the same token.
type Identity struct {
	User, Agent, Tenant, Issuer, ClientID string
	// Actors is the RFC 8693 actor chain, nearest first (Actors[0] is
	// Agent); empty when the token has no act claim.
	Actors []string
	Scopes []string
	// Claims are the verified claims.
	Claims    map[string]any
	ExpiresAt time.Time
	// Dev is true when the development issuer signed the token.
	Dev bool
}

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// Leeway for exp, nbf and iat; default 30s.
	Leeway time.Duration
	// MaxActorDepth bounds the act chain; default 5.
	MaxActorDepth int
	// CacheMaxCost is the number of verified identities cached; default
	// 100000.
	CacheMaxCost int64
	// HTTPClient fetches jwks_uri key sets; default a client with a 10s
	// timeout. Responses are limited to 1 MiB.
	HTTPClient *http.Client
	// RefreshInterval between periodic jwks_uri refreshes; default 5m.
	RefreshInterval time.Duration
	// UnknownKIDRate allows at most one refetch per interval per issuer
	// when a token names an unknown kid; default 10s.
	UnknownKIDRate time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives JWKS refresh failures; default discards.
	Logger *slog.Logger
}

// Verifier checks inbound JWTs against trusted issuers and caches the
// identities they carry until the tokens expire.
type Verifier struct {
	issuers  map[string]*trustedIssuer
	maxDepth int
	now      func() time.Time
	cache    *ristretto.Cache[string, *cachedIdentity]
	stats    cacheCounters

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type trustedIssuer struct {
	cfg    IssuerConfig
	algs   map[string]bool
	parser *jwt.Parser
	keys   *keySource
}

type cachedIdentity struct {
	key string
	id  *Identity
}

// headerParser reads the unverified header and iss, only to choose the
// issuer whose keys and rules then decide.
var headerParser = jwt.NewParser()

// NewVerifier loads the key sets of issuers (files are read now, jwks_uri
// sets fetched now and then refreshed in the background until Close). A
// jwks_uri that cannot be fetched at start is logged, not fatal: its tokens
// fail with ErrUnknownKey until a refetch succeeds. ctx bounds the start-up
// fetches.
func NewVerifier(ctx context.Context, issuers []IssuerConfig, opts VerifierOptions) (*Verifier, error) {
	if opts.Leeway == 0 {
		opts.Leeway = 30 * time.Second
	}
	if opts.MaxActorDepth == 0 {
		opts.MaxActorDepth = 5
	}
	if opts.CacheMaxCost == 0 {
		opts.CacheMaxCost = 100000
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = 5 * time.Minute
	}
	if opts.UnknownKIDRate == 0 {
		opts.UnknownKIDRate = 10 * time.Second
	}
	if opts.Leeway < 0 || opts.MaxActorDepth < 0 || opts.CacheMaxCost < 0 || opts.RefreshInterval < 0 || opts.UnknownKIDRate < 0 {
		return nil, errors.New("tokens: verifier options must not be negative")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client := jwksClient(opts.HTTPClient)

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	v := &Verifier{
		issuers:  make(map[string]*trustedIssuer, len(issuers)),
		maxDepth: opts.MaxActorDepth,
		now:      opts.Now,
		stop:     stop,
	}
	fail := func(err error) (*Verifier, error) {
		stop()
		v.wg.Wait()
		return nil, err
	}
	for i, cfg := range issuers {
		if err := cfg.Validate(); err != nil {
			return fail(fmt.Errorf("trusted_issuers[%d].%w", i, err))
		}
		cfg = cfg.withDefaults()
		if _, dup := v.issuers[cfg.Issuer]; dup {
			return fail(fmt.Errorf("trusted_issuers[%d].issuer: %q is listed twice", i, cfg.Issuer))
		}
		ti := &trustedIssuer{cfg: cfg, algs: make(map[string]bool, len(cfg.Algorithms))}
		for _, a := range cfg.Algorithms {
			ti.algs[a] = true
		}
		ti.parser = jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(opts.Now),
		)
		switch {
		case cfg.KeySet != nil:
			ks, err := newLiveKeySource(cfg.KeySet)
			if err != nil {
				return fail(fmt.Errorf("trusted_issuers[%d].%w", i, err))
			}
			ti.keys = ks
		case cfg.JWKSURI == "":
			ks, err := newFileKeySource(cfg)
			if err != nil {
				return fail(fmt.Errorf("trusted_issuers[%d].%w", i, err))
			}
			ti.keys = ks
		default:
			ti.keys = &keySource{
				keys:    jwkset.NewMemoryStorage(),
				url:     cfg.JWKSURI,
				client:  client,
				minWait: opts.UnknownKIDRate,
				now:     opts.Now,
				logger:  opts.Logger,
			}
			if err := ti.keys.refetch(ctx); err != nil {
				opts.Logger.WarnContext(ctx, "jwks fetch failed; will retry", "issuer", cfg.Issuer, "jwks_uri", cfg.JWKSURI, "error", err)
			}
			v.wg.Add(1)
			go v.refreshLoop(bg, ti.keys, opts.RefreshInterval)
		}
		v.issuers[cfg.Issuer] = ti
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *cachedIdentity]{
		NumCounters:        10 * max(opts.CacheMaxCost, 1),
		MaxCost:            max(opts.CacheMaxCost, 1),
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return fail(fmt.Errorf("tokens: identity cache: %w", err))
	}
	v.cache = cache
	return v, nil
}

func (v *Verifier) refreshLoop(ctx context.Context, ks *keySource, every time.Duration) {
	defer v.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := ks.refetch(ctx); err != nil && ctx.Err() == nil {
				ks.logger.WarnContext(ctx, "jwks refresh failed", "jwks_uri", ks.url, "error", err)
			}
		}
	}
}

// Close stops background refreshes and releases the cache.
func (v *Verifier) Close() {
	v.stop()
	v.wg.Wait()
	v.cache.Close()
}

// Verify checks raw and returns the identity it carries. Errors wrap exactly
// one of the package's verification sentinels and never contain the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token is larger than %d bytes", ErrMalformed, MaxTokenSize)
	}
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	now := v.now()
	if c, ok := v.cache.Get(key); ok && c.key == key && now.Before(c.id.ExpiresAt) {
		v.stats.hit()
		return c.id, nil
	}
	v.stats.miss()
	id, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	// Never past exp, with no leeway.
	if ttl := id.ExpiresAt.Sub(now); ttl > 0 {
		v.cache.SetWithTTL(key, &cachedIdentity{key: key, id: id}, 1, ttl)
	}
	return id, nil
}

// acceptedTypes are the header typ values of inbound tokens.
var acceptedTypes = []string{"JWT", "at+jwt", "application/at+jwt"}

// issClaim decodes only iss from the unverified payload.
type issClaim struct {
	jwt.RegisteredClaims
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, error) {
	var unverified issClaim
	tok, _, err := headerParser.ParseUnverified(raw, &unverified)
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, fmt.Errorf("%w: missing or unknown alg", ErrAlgorithm)
	case err != nil:
		return nil, fmt.Errorf("%w: not a signed JWT", ErrMalformed)
	}
	if t, ok := tok.Header["typ"]; ok {
		s, ok := t.(string)
		if !ok || !containsFold(acceptedTypes, s) {
			return nil, fmt.Errorf("%w: typ must be JWT or at+jwt", ErrType)
		}
	}
	alg := tok.Method.Alg()
	if why := forbiddenAlgorithm(alg); why != "" {
		return nil, fmt.Errorf("%w: %s algorithms are never accepted", ErrAlgorithm, why)
	}
	if unverified.Issuer == "" {
		return nil, fmt.Errorf("%w: token has no iss", ErrIssuer)
	}
	ti, ok := v.issuers[unverified.Issuer]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIssuer, truncate(unverified.Issuer, 64))
	}
	if !ti.algs[alg] {
		return nil, fmt.Errorf("%w: %s is not in the issuer's allowlist", ErrAlgorithm, truncate(alg, 16))
	}
	claims := jwt.MapClaims{}
	_, err = ti.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, present := t.Header["kid"]
		if !present {
			return ti.keys.anyKey(ctx, alg)
		}
		s, ok := kid.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("%w: kid is not a string", ErrUnknownKey)
		}
		return ti.keys.key(ctx, s, alg)
	})
	if err != nil {
		return nil, parseError(err, claims)
	}
	return v.identity(ti, claims)
}

// parseError turns a golang-jwt error into exactly one sentinel.
func parseError(err error, claims jwt.MapClaims) error {
	for _, own := range []error{ErrUnknownKey, ErrAlgorithm} {
		if errors.Is(err, own) {
			return err
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: undecodable", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: signature does not verify", ErrSignature)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: no usable key", ErrUnknownKey)
	case errors.Is(err, jwt.ErrInvalidType):
		return fmt.Errorf("%w: a registered claim has the wrong type", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp has passed", ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: iat is in the future", ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: iss does not match", ErrIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: aud names no accepted audience", ErrAudience)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		if _, ok := claims["exp"]; !ok || claims["exp"] == float64(0) {
			return fmt.Errorf("%w: token has no exp", ErrExpired)
		}
		return fmt.Errorf("%w: token has no aud", ErrAudience)
	}
	return fmt.Errorf("%w: invalid token", ErrMalformed)
}

// identity reads the verified claims.
func (v *Verifier) identity(ti *trustedIssuer, claims jwt.MapClaims) (*Identity, error) {
	rawSub, ok := claims["sub"]
	if !ok {
		return nil, fmt.Errorf("%w: no sub", ErrMissingSubject)
	}
	sub, ok := rawSub.(string)
	if !ok {
		return nil, fmt.Errorf("%w: sub is not a string", ErrMalformed)
	}
	if sub == "" {
		return nil, fmt.Errorf("%w: empty sub", ErrMissingSubject)
	}
	for _, c := range ti.cfg.RefuseClaims {
		if _, ok := claims[c]; ok {
			return nil, fmt.Errorf("%w: a token with %s is not accepted from this issuer", ErrType, c)
		}
	}
	clientID, err := optionalString(claims, "client_id")
	if err != nil {
		return nil, err
	}
	if clientID == "" {
		if clientID, err = optionalString(claims, "azp"); err != nil {
			return nil, err
		}
	}
	id := &Identity{
		Issuer:   ti.cfg.Issuer,
		ClientID: clientID,
		Claims:   claims,
		Dev:      ti.cfg.Dev,
	}
	if act, ok := claims["act"]; ok {
		actors, err := actorChain(act, v.maxDepth)
		if err != nil {
			return nil, err
		}
		id.User, id.Agent, id.Actors = sub, actors[0], actors
	} else if sub == clientID {
		id.Agent = sub // the agent acting as itself
	} else {
		id.User, id.Agent = sub, clientID
	}
	if id.Scopes, err = scopes(claims); err != nil {
		return nil, err
	}
	if id.Tenant, err = optionalString(claims, ti.cfg.TenantClaim); err != nil {
		return nil, err
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, fmt.Errorf("%w: token has no exp", ErrExpired)
	}
	id.ExpiresAt = exp.Time
	return id, nil
}

func optionalString(claims jwt.MapClaims, name string) (string, error) {
	raw, ok := claims[name]
	if !ok {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%w: %s is not a string", ErrMalformed, truncate(name, 64))
	}
	return s, nil
}

// actorChain flattens a nested RFC 8693 act claim, nearest actor first.
func actorChain(act any, maxDepth int) ([]string, error) {
	var actors []string
	for {
		obj, ok := act.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: act is not an object", ErrActorChain)
		}
		sub, ok := obj["sub"].(string)
		if !ok || sub == "" {
			return nil, fmt.Errorf("%w: act has no sub", ErrActorChain)
		}
		actors = append(actors, sub)
		if len(actors) > maxDepth {
			return nil, fmt.Errorf("%w: deeper than %d actors", ErrActorChain, maxDepth)
		}
		next, ok := obj["act"]
		if !ok {
			return actors, nil
		}
		act = next
	}
}

// scopes reads scope (space-separated) or scp (array of strings).
func scopes(claims jwt.MapClaims) ([]string, error) {
	if raw, ok := claims["scope"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, fmt.Errorf("%w: scope is not a string", ErrMalformed)
		}
		return strings.Fields(s), nil
	}
	raw, ok := claims["scp"]
	if !ok {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		if s, ok := raw.(string); ok {
			return strings.Fields(s), nil
		}
		return nil, fmt.Errorf("%w: scp is not an array of strings", ErrMalformed)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("%w: scp is not an array of strings", ErrMalformed)
		}
		out = append(out, s)
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, item := range list {
		if strings.EqualFold(item, s) {
			return true
		}
	}
	return false
}

// jwksClient returns the HTTP client for key sets, with response bodies
// capped at maxJWKSBytes.
func jwksClient(base *http.Client) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	} else {
		c.Timeout = 10 * time.Second
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = limitedTransport{base: rt}
	return &c
}

type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = http.MaxBytesReader(nil, resp.Body, maxJWKSBytes)
	return resp, nil
}
