package oauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/tokens"
)

// Grant and token types of the token endpoint.
const (
	// GrantTypeClientCredentials is RFC 6749 section 4.4: the agent as
	// itself.
	GrantTypeClientCredentials = "client_credentials"
	// GrantTypeTokenExchange is RFC 8693 token exchange: the agent for a
	// user.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken and TokenTypeJWT are the RFC 8693 token types
	// accepted as subject, actor and requested token types.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// DefaultMaxDelegationDepth is TokenConfig.MaxDelegationDepth when zero.
const DefaultMaxDelegationDepth = 4

// TokenConfig is the token_endpoint section of writ's configuration.
type TokenConfig struct {
	// TokenTTL is the lifetime of issued tokens; zero means the minter's
	// maximum (tokens.max_ttl), which also caps it.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// MaxDelegationDepth is the most actors a token from token exchange may
	// name in its act chain, the exchanging agent included; 4 when zero.
	MaxDelegationDepth int `yaml:"max_delegation_depth"`
}

// Validate reports a configuration that cannot be used.
func (c TokenConfig) Validate() error {
	if c.TokenTTL < 0 {
		return fmt.Errorf("%w: token_endpoint.token_ttl is negative", ErrConfig)
	}
	if c.MaxDelegationDepth < 0 {
		return fmt.Errorf("%w: token_endpoint.max_delegation_depth is negative", ErrConfig)
	}
	return nil
}

// TokenVerifier verifies inbound tokens from trusted issuers: the subject
// and actor tokens of token exchange. *tokens.Verifier is one.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*tokens.Identity, error)
}

// KeySet is writ's own public key set, to verify the tokens writ issued
// (revocation and introspection). *tokens.Keyring is one.
type KeySet interface {
	JWKS() []byte
}

// Revocations stores revoked writ tokens. *tokens.Revocations is one.
type Revocations interface {
	Revoke(ctx context.Context, jti, clientID string, exp time.Time) error
	Revoked(jti string) bool
}

// TokenEndpointConfig wires a TokenEndpoint.
type TokenEndpointConfig struct {
	// Issuer is writ's issuer URL: the iss of writ tokens, and the base of
	// /token, /revoke and /introspect. Required.
	Issuer string
	// Token is the token_endpoint configuration.
	Token TokenConfig
	// Directory authenticates clients. Required.
	Directory *Directory
	// Minter mints writ tokens. Required.
	Minter Minter
	// Verifier verifies subject and actor tokens of token exchange; when
	// nil, token exchange is not offered. Trust writ's own issuer in it to
	// let agents exchange writ tokens (delegation chains).
	Verifier TokenVerifier
	// Keys is writ's public key set. Required.
	Keys KeySet
	// Revocations stores revoked tokens. Required.
	Revocations Revocations
	// Resources are the identifiers of the protected resources: the only
	// audiences (RFC 8707 resource, RFC 8693 audience) tokens are issued for.
	Resources []string
	// CIBA serves the CIBA grant; nil when CIBA is off. It must use
	// Directory.
	CIBA *CIBA
	// Evidence keeps an evidence record of every token issued (outcome
	// token_issued), every refused token request (token_refused) and every
	// stored revocation (token_revoked); nil keeps none. A token whose
	// record is not kept is not handed out: the request is answered 503
	// server_error. Records name the token's jti, audience, scopes and
	// expiry, never the token, a client secret or an assertion.
	Evidence Evidence
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger; nothing is logged when nil.
	Logger *slog.Logger
}

// grantFunc answers one grant for an authenticated client with the token
// it minted.
type grantFunc func(ctx context.Context, c *client, form url.Values) (*issuance, *oauthError)

// TokenEndpoint serves POST /token (client_credentials, RFC 8693 token
// exchange and the CIBA grant), POST /revoke (RFC 7009) and POST
// /introspect (RFC 7662).
type TokenEndpoint struct {
	cfg       TokenEndpointConfig
	maxDepth  int
	dir       *Directory
	now       func() time.Time
	log       *slog.Logger
	grants    map[string]grantFunc
	resources map[string]bool

	ownMu   sync.Mutex
	ownJWKS []byte
	ownKeys keyfunc.Keyfunc
}

// NewTokenEndpoint returns the token, revocation and introspection
// endpoints for cfg.
func NewTokenEndpoint(cfg TokenEndpointConfig) (*TokenEndpoint, error) {
	if err := cfg.Token.Validate(); err != nil {
		return nil, err
	}
	if u, err := url.Parse(cfg.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: issuer must be an http(s) URL", ErrConfig)
	}
	switch {
	case cfg.Directory == nil:
		return nil, fmt.Errorf("%w: no client directory", ErrConfig)
	case cfg.Minter == nil:
		return nil, fmt.Errorf("%w: no minter", ErrConfig)
	case cfg.Keys == nil:
		return nil, fmt.Errorf("%w: no key set", ErrConfig)
	case cfg.Revocations == nil:
		return nil, fmt.Errorf("%w: no revocation store", ErrConfig)
	case cfg.CIBA != nil && cfg.CIBA.dir != cfg.Directory:
		return nil, fmt.Errorf("%w: CIBA must use the token endpoint's directory", ErrConfig)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &TokenEndpoint{
		cfg:       cfg,
		maxDepth:  cfg.Token.MaxDelegationDepth,
		dir:       cfg.Directory,
		now:       cfg.Now,
		log:       cfg.Logger,
		resources: make(map[string]bool, len(cfg.Resources)),
	}
	if t.maxDepth == 0 {
		t.maxDepth = DefaultMaxDelegationDepth
	}
	for i, r := range cfg.Resources {
		if r == "" {
			return nil, fmt.Errorf("%w: resources[%d] is empty", ErrConfig, i)
		}
		t.resources[r] = true
	}
	t.grants = map[string]grantFunc{GrantTypeClientCredentials: t.clientCredentials}
	if cfg.Verifier != nil {
		t.grants[GrantTypeTokenExchange] = t.exchange
	}
	if cfg.CIBA != nil {
		t.grants[GrantTypeCIBA] = cfg.CIBA.grant
	}
	return t, nil
}

// Routes registers POST /token, POST /revoke and POST /introspect on mux.
func (t *TokenEndpoint) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /token", t.handleToken)
	mux.HandleFunc("POST /revoke", t.handleRevoke)
	mux.HandleFunc("POST /introspect", t.handleIntrospect)
}

func (t *TokenEndpoint) url(path string) string { return t.cfg.Issuer + path }

// audiences a client assertion may name: writ's issuer, its token
// endpoint (RFC 7523 section 3), or the endpoint it is sent to.
func (t *TokenEndpoint) audiences(endpoint string) []string {
	return []string{t.cfg.Issuer, t.url("/token"), t.url(endpoint)}
}

// Metadata returns the token endpoint's part of writ's authorization
// server metadata (RFC 8414).
func (t *TokenEndpoint) Metadata() map[string]any {
	grants := make([]string, 0, len(t.grants))
	for _, g := range []string{GrantTypeClientCredentials, GrantTypeTokenExchange, GrantTypeCIBA} {
		if t.grants[g] != nil {
			grants = append(grants, g)
		}
	}
	methods := t.dir.authMethods()
	m := map[string]any{
		"token_endpoint":                                t.url("/token"),
		"revocation_endpoint":                           t.url("/revoke"),
		"introspection_endpoint":                        t.url("/introspect"),
		"grant_types_supported":                         grants,
		"token_endpoint_auth_methods_supported":         methods,
		"revocation_endpoint_auth_methods_supported":    methods,
		"introspection_endpoint_auth_methods_supported": methods,
	}
	if slices.Contains(methods, authPrivateKeyJWT) {
		m["token_endpoint_auth_signing_alg_values_supported"] = assertionAlgorithms
		m["revocation_endpoint_auth_signing_alg_values_supported"] = assertionAlgorithms
		m["introspection_endpoint_auth_signing_alg_values_supported"] = assertionAlgorithms
	}
	return m
}

// handleToken is the token endpoint: authenticate the client, dispatch
// on grant_type, keep the evidence record, answer.
func (t *TokenEndpoint) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := parseForm(w, r); e != nil {
		t.refuse(w, r, nil, e, start)
		return
	}
	c, e := t.dir.authenticate(r, t.audiences("/token"))
	if e != nil {
		t.refuse(w, r, nil, e, start)
		return
	}
	gt := r.PostForm.Get("grant_type")
	grant := t.grants[gt]
	switch {
	case gt == "":
		e = badRequest(codeInvalidRequest, "grant_type is required")
	case grant == nil:
		e = badRequest(codeUnsupportedGrantType, "writ does not serve this grant_type")
	default:
		e = c.refusal()
	}
	if e == nil && !c.mayUse(gt) {
		e = badRequest(codeUnauthorizedClient, "the client is not registered for this grant_type")
	}
	if e != nil {
		t.refuse(w, r, c, e, start)
		return
	}
	iss, e := grant(r.Context(), c, r.PostForm)
	if e != nil {
		t.refuse(w, r, c, e, start)
		return
	}
	if err := t.recordIssued(r, c, gt, iss, start); err != nil {
		// Without its evidence record the token does not leave writ.
		t.log.Error("token not issued: evidence record not kept", "client_id", c.ID, "grant_type", gt,
			"decision_id", iss.req.DecisionID, "jti", iss.minted.JTI, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, &oauthError{status: http.StatusServiceUnavailable, code: codeServerError, description: "the token could not be recorded"})
		return
	}
	t.log.Info("token issued", "client_id", c.ID, "grant_type", gt, "user", iss.req.User,
		"decision_id", iss.req.DecisionID, "token", iss.minted)
	writeJSON(w, http.StatusOK, iss.body)
}

// refuse answers a refused token request and records it. c is the
// authenticated client, nil when there is none. An authorization_pending
// answer is a poll of a CIBA request still waiting for its user, not a
// refusal: it is logged but not recorded.
func (t *TokenEndpoint) refuse(w http.ResponseWriter, r *http.Request, c *client, e *oauthError, start time.Time) {
	gt := r.PostForm.Get("grant_type")
	var clientID string
	if c != nil {
		clientID = c.ID
	}
	t.log.Info("token request refused", "client_id", clientID, "grant_type", truncate(gt, 80),
		"error", e.code, "error_description", e.description)
	// A refusal is evidence about an identity: a request from a client that
	// did not authenticate names nobody (it is logged above), and a pending
	// poll is not a refusal. Neither is recorded, so neither can flood the
	// evidence log as fast as a caller sends requests.
	if c != nil && e.code != codeAuthorizationPending {
		t.recordRefused(r, c, gt, e, start)
	}
	writeError(w, e)
}

// mint issues a token endpoint token: never from the mint cache, so each
// answer has its own jti and can be revoked alone. req.DecisionID becomes
// the id of its evidence record, which names the token's jti; the token
// itself carries no decision_id, the mark of writ's per-request tokens,
// which the Check path never accepts back as a credential.
func (t *TokenEndpoint) mint(ctx context.Context, c *client, grant string, req tokens.MintRequest) (*issuance, *oauthError) {
	if req.TTL == 0 {
		req.TTL = t.cfg.Token.TokenTTL
	}
	req.NoCache = true
	id, e := newDecisionID()
	if e != nil {
		t.log.Error("token not minted: no decision id", "client_id", c.ID, "grant_type", grant)
		return nil, e
	}
	req.DecisionID = id
	claims := req
	claims.DecisionID = ""
	minted, err := t.cfg.Minter.Mint(ctx, claims)
	if err != nil {
		t.log.Error("token not minted", "client_id", c.ID, "grant_type", grant, "error", err)
		return nil, serverError("token could not be issued")
	}
	return &issuance{body: t.tokenResponse(minted), minted: minted, req: req}, nil
}

// tokenResponse is the RFC 6749 section 5.1 answer for minted.
func (t *TokenEndpoint) tokenResponse(minted tokens.Minted) map[string]any {
	body := map[string]any{
		"access_token": minted.Token.Reveal(),
		"token_type":   "Bearer",
		"expires_in":   int64(minted.ExpiresAt.Sub(t.now()) / time.Second),
	}
	if len(minted.Scopes) > 0 {
		body["scope"] = strings.Join(minted.Scopes, " ")
	}
	return body
}

// target is the one resource a token is for: the RFC 8707 resource or
// RFC 8693 audience parameters, each a configured resource. With neither,
// the only configured resource; with several configured, the request must
// name one (invalid_target: RFC 8707 section 2 counts a missing resource).
func (t *TokenEndpoint) target(form url.Values) (string, *oauthError) {
	var names []string
	for _, v := range form["resource"] {
		u, err := url.Parse(v)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(v, "#") {
			return "", badRequest(codeInvalidTarget, "resource must be an absolute URI without a fragment")
		}
		names = append(names, v)
	}
	names = append(names, form["audience"]...)
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	switch {
	case len(names) > 1:
		return "", badRequest(codeInvalidTarget, "a token is issued for one resource at a time")
	case len(names) == 1 && !t.resources[names[0]]:
		return "", badRequest(codeInvalidTarget, "the resource is not one writ protects")
	case len(names) == 1:
		return names[0], nil
	case len(t.cfg.Resources) == 1:
		return t.cfg.Resources[0], nil
	}
	return "", badRequest(codeInvalidTarget, "name the resource (resource or audience): writ protects several, or none")
}

// parseScope reads an RFC 6749 section 3.3 scope parameter.
func parseScope(s string) ([]string, *oauthError) {
	if strings.Trim(s, " ") != s || strings.Contains(s, "  ") {
		return nil, badRequest(codeInvalidScope, "scope must be scope-tokens separated by single spaces")
	}
	scopes := strings.Fields(s)
	for _, sc := range scopes {
		if !tokens.IsScopeToken(sc) {
			return nil, badRequest(codeInvalidScope, "scope is malformed")
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(scopes))), nil
}

// ownClaims verifies a token writ issued and returns its claims. Expired
// tokens fail with an error wrapping jwt.ErrTokenExpired.
func (t *TokenEndpoint) ownClaims(ctx context.Context, raw string) (jwt.MapClaims, error) {
	if raw == "" || len(raw) > tokens.MaxTokenSize {
		return nil, jwt.ErrTokenMalformed
	}
	keys, err := t.ownKeySet()
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, keys.KeyfuncCtx(ctx),
		jwt.WithValidMethods([]string{tokens.ES256, tokens.RS256, tokens.EdDSA}),
		jwt.WithIssuer(t.cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return nil, err
	}
	if typ, _ := tok.Header["typ"].(string); typ != "at+jwt" && typ != "txntoken+jwt" {
		return nil, jwt.ErrTokenInvalidClaims
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return nil, jwt.ErrTokenRequiredClaimMissing
	}
	return claims, nil
}

// ownKeySet parses writ's JWKS again whenever it changed (a rotation).
func (t *TokenEndpoint) ownKeySet() (keyfunc.Keyfunc, error) {
	raw := t.cfg.Keys.JWKS()
	t.ownMu.Lock()
	defer t.ownMu.Unlock()
	if t.ownKeys != nil && bytes.Equal(raw, t.ownJWKS) {
		return t.ownKeys, nil
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("oauth: writ's JWKS: %w", err)
	}
	t.ownJWKS, t.ownKeys = raw, kf
	return kf, nil
}

// issuedTo reports whether a writ token's claims name clientID as its
// client (client_id) or its nearest actor (act.sub).
func issuedTo(claims jwt.MapClaims, clientID string) bool {
	if id, _ := claims["client_id"].(string); id == clientID {
		return true
	}
	act, _ := claims["act"].(map[string]any)
	sub, _ := act["sub"].(string)
	return sub == clientID
}

// actors flattens a nested act claim, nearest first.
func actors(act any) []string {
	var out []string
	for depth := 0; act != nil && depth < 64; depth++ {
		obj, ok := act.(map[string]any)
		if !ok {
			break
		}
		if sub, ok := obj["sub"].(string); ok {
			out = append(out, sub)
		}
		act = obj["act"]
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
