package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Client authentication methods.
const (
	authSecretBasic   = "client_secret_basic"
	authPrivateKeyJWT = "private_key_jwt"
	assertionTypeJWT  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// assertionAlgorithms are the signing algorithms accepted for client
// assertions.
var assertionAlgorithms = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

// maxAssertionLifetime bounds how far in the future a client assertion's
// exp may lie, which also bounds how long its jti is remembered.
const maxAssertionLifetime = 10 * time.Minute

// assertionLeeway is the clock skew allowed on a client assertion's exp,
// nbf and iat.
const assertionLeeway = 30 * time.Second

// replayCache remembers client assertion jti values until they expire: the
// fast path before the shared spent_assertions table.
type replayCache struct {
	mu    sync.Mutex
	seen  map[string]time.Time // client id + NUL + jti → exp
	swept time.Time            // when expired entries were last dropped
}

// replaySweep is how often remember drops expired entries: a sweep walks
// the whole map, so it must not run on every assertion.
const replaySweep = 10 * time.Second

// remember records key and reports whether it was new.
func (r *replayCache) remember(key string, exp, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) >= replaySweep {
		for k, e := range r.seen {
			if !e.After(now) {
				delete(r.seen, k)
			}
		}
		r.swept = now
	}
	if e, ok := r.seen[key]; ok && e.After(now) {
		return false
	}
	if _, ok := r.seen[key]; ok {
		return false
	}
	r.seen[key] = exp
	return true
}

func invalidClient(basic bool, description string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: codeInvalidClient, description: description, basic: basic}
}

func serverError(description string) *oauthError {
	return &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: description}
}

// authenticate identifies the client of a form-encoded request by
// client_secret_basic or private_key_jwt (RFC 7523), whichever the client
// registered: a client registered for one cannot use the other. audiences
// are the values a client assertion's aud may name. A metadata-document
// client that authenticates for the first time is registered as an agent.
func (d *Directory) authenticate(r *http.Request, audiences []string) (*client, *oauthError) {
	form := r.PostForm
	user, pass, hasBasic := r.BasicAuth()
	assertion := form.Get("client_assertion")
	var (
		c *client
		e *oauthError
	)
	switch {
	case hasBasic && (assertion != "" || form.Has("client_secret")):
		return nil, badRequest(codeInvalidRequest, "more than one client authentication method")
	case hasBasic:
		c, e = d.authenticateBasic(r, user, pass)
	case assertion != "":
		if form.Get("client_assertion_type") != assertionTypeJWT {
			return nil, invalidClient(false, "unsupported client_assertion_type")
		}
		c, e = d.authenticateAssertion(r, assertion, audiences)
	case form.Has("client_secret"):
		return nil, invalidClient(false, "client_secret_post is not supported; use HTTP Basic")
	default:
		return nil, invalidClient(false, "client authentication required")
	}
	if e != nil {
		return nil, e
	}
	if err := d.admit(r.Context(), c); err != nil {
		d.log.Error("agent of a client metadata document not registered", "client_id", c.ID, "error", err)
		return nil, serverError("the client could not be registered")
	}
	return c, nil
}

func (d *Directory) authenticateBasic(r *http.Request, user, pass string) (*client, *oauthError) {
	// RFC 6749 section 2.3.1: both parts are form-urlencoded.
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return nil, invalidClient(true, "malformed client credentials")
	}
	if fid := r.PostForm.Get("client_id"); fid != "" && fid != id {
		return nil, badRequest(codeInvalidRequest, "client_id does not match the authenticated client")
	}
	c, e := d.find(r, id, true)
	if e != nil {
		return nil, e
	}
	sum := sha256.Sum256([]byte(secret))
	if !c.secretOK || subtle.ConstantTimeCompare(sum[:], c.secretHash) != 1 {
		return nil, invalidClient(true, "client authentication failed")
	}
	if !c.secretExpiresAt.IsZero() && !d.now().Before(c.secretExpiresAt) {
		return nil, invalidClient(true, "the client secret has expired")
	}
	return c, nil
}

// find looks a client up for authentication: unknown clients are
// invalid_client, store failures server_error.
func (d *Directory) find(r *http.Request, id string, basic bool) (*client, *oauthError) {
	c, err := d.lookup(r.Context(), id)
	switch {
	case errors.Is(err, errUnknownClient):
		return nil, invalidClient(basic, "client authentication failed")
	case err != nil:
		d.log.Error("client lookup failed", "client_id", id, "error", err)
		return nil, serverError("the client could not be looked up")
	}
	return c, nil
}

func (d *Directory) authenticateAssertion(r *http.Request, assertion string, audiences []string) (*client, *oauthError) {
	// The client is named by iss; read it unverified only to pick the key
	// set, then verify the signature and every claim with that set.
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &unverified); err != nil {
		return nil, invalidClient(false, "malformed client assertion")
	}
	if unverified.Issuer == "" {
		return nil, invalidClient(false, "client assertion without iss")
	}
	c, e := d.find(r, unverified.Issuer, false)
	if e != nil {
		return nil, e
	}
	if !c.jwtOK {
		return nil, invalidClient(false, "client authentication failed")
	}
	if fid := r.PostForm.Get("client_id"); fid != "" && fid != c.ID {
		return nil, badRequest(codeInvalidRequest, "client_id does not match the authenticated client")
	}
	claims, err := d.verifyAssertion(r, c, assertion, false)
	if err != nil && c.staticKeys == nil {
		// The client may have rotated its keys: fetch its jwks_uri anew
		// (rate limited) and try once more.
		claims, err = d.verifyAssertion(r, c, assertion, true)
	}
	if err != nil {
		return nil, invalidClient(false, "client assertion rejected")
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return nil, invalidClient(false, "client assertion audience does not name writ")
	}
	if claims.ID == "" {
		return nil, invalidClient(false, "client assertion without jti")
	}
	exp := claims.ExpiresAt.Time
	if exp.After(d.now().Add(maxAssertionLifetime)) {
		return nil, invalidClient(false, "client assertion lives too long")
	}
	fresh, err := d.spend(r.Context(), c.ID, claims.ID, exp.Add(assertionLeeway))
	if err != nil {
		d.log.Error("client assertion replay check failed", "client_id", c.ID, "error", err)
		return nil, serverError("the client assertion could not be checked")
	}
	if !fresh {
		return nil, invalidClient(false, "client assertion replayed")
	}
	return c, nil
}

func (d *Directory) verifyAssertion(r *http.Request, c *client, assertion string, refresh bool) (*jwt.RegisteredClaims, error) {
	keys, err := d.keysFor(r.Context(), c, refresh)
	if err != nil {
		d.log.Info("client keys not available", "client_id", c.ID, "error", err)
		return nil, err
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(assertion, &claims, keys.KeyfuncCtx(r.Context()),
		jwt.WithValidMethods(assertionAlgorithms),
		jwt.WithIssuer(c.ID),
		jwt.WithSubject(c.ID),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(d.now),
		jwt.WithLeeway(assertionLeeway),
	)
	if err != nil {
		return nil, err
	}
	return &claims, nil
}
