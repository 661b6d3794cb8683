package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
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
// exp may lie, which also bounds the replay cache.
const maxAssertionLifetime = 10 * time.Minute

type registeredClient struct {
	Client
	secretHash []byte
	keys       keyfunc.Keyfunc
}

func (c *registeredClient) mode() string {
	if c.DeliveryMode == "" {
		return DeliveryPoll
	}
	return c.DeliveryMode
}

// replayCache remembers client assertion jti values until they expire.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // client id + NUL + jti → exp
}

// remember records key and reports whether it was new.
func (r *replayCache) remember(key string, exp, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.seen {
		if !e.After(now) {
			delete(r.seen, k)
		}
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

// authenticate identifies the client of a form-encoded request by
// client_secret_basic or private_key_jwt. audiences are the values a
// client assertion's aud may name.
func (c *CIBA) authenticate(r *http.Request, audiences []string) (*registeredClient, *oauthError) {
	form := r.PostForm
	user, pass, hasBasic := r.BasicAuth()
	assertion := form.Get("client_assertion")
	switch {
	case hasBasic && assertion != "":
		return nil, badRequest(codeInvalidRequest, "more than one client authentication method")
	case hasBasic:
		return c.authenticateBasic(form, user, pass)
	case assertion != "":
		if form.Get("client_assertion_type") != assertionTypeJWT {
			return nil, invalidClient(false, "unsupported client_assertion_type")
		}
		return c.authenticateAssertion(form, assertion, audiences)
	}
	return nil, invalidClient(false, "client authentication required")
}

func (c *CIBA) authenticateBasic(form url.Values, user, pass string) (*registeredClient, *oauthError) {
	// RFC 6749 section 2.3.1: both parts are form-urlencoded.
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return nil, invalidClient(true, "malformed client credentials")
	}
	if fid := form.Get("client_id"); fid != "" && fid != id {
		return nil, badRequest(codeInvalidRequest, "client_id does not match the authenticated client")
	}
	rc, ok := c.clients[id]
	sum := sha256.Sum256([]byte(secret))
	if !ok || rc.secretHash == nil || subtle.ConstantTimeCompare(sum[:], rc.secretHash) != 1 {
		return nil, invalidClient(true, "client authentication failed")
	}
	return rc, nil
}

func (c *CIBA) authenticateAssertion(form url.Values, assertion string, audiences []string) (*registeredClient, *oauthError) {
	// The client is named by iss; read it unverified only to pick the key
	// set, then verify the signature and every claim with that set.
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &unverified); err != nil {
		return nil, invalidClient(false, "malformed client assertion")
	}
	rc, ok := c.clients[unverified.Issuer]
	if !ok || rc.keys == nil {
		return nil, invalidClient(false, "client authentication failed")
	}
	if fid := form.Get("client_id"); fid != "" && fid != rc.ID {
		return nil, badRequest(codeInvalidRequest, "client_id does not match the authenticated client")
	}
	now := c.now()
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, rc.keys.Keyfunc,
		jwt.WithValidMethods(assertionAlgorithms),
		jwt.WithIssuer(rc.ID),
		jwt.WithSubject(rc.ID),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(c.now),
		jwt.WithLeeway(30*time.Second),
	)
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
	if exp.After(now.Add(maxAssertionLifetime)) {
		return nil, invalidClient(false, "client assertion lives too long")
	}
	if !c.replays.remember(rc.ID+"\x00"+claims.ID, exp.Add(30*time.Second), now) {
		return nil, invalidClient(false, "client assertion replayed")
	}
	return rc, nil
}

func register(cl Client) (*registeredClient, error) {
	if err := cl.validate(); err != nil {
		return nil, err
	}
	rc := &registeredClient{Client: cl}
	if cl.SecretHash != "" {
		rc.secretHash, _ = hex.DecodeString(cl.SecretHash)
	}
	if len(cl.JWKS) > 0 {
		kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(cl.JWKS))
		if err != nil {
			return nil, errors.Join(ErrConfig, err)
		}
		rc.keys = kf
	}
	return rc, nil
}
