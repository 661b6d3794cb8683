package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

const (
	secretClient = "agent-secret"
	secret       = "s3cret-for-tests"
	jwtClient    = "agent-jwt"
	pingClient   = "agent-ping"
	user         = "user-7"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// env is a CIBA server over a real approval store and minter.
type env struct {
	t        *testing.T
	clock    *clock
	now      func() time.Time // the clock every part uses
	store    *approvals.Store
	ciba     *oauth.CIBA
	keyring  *tokens.Keyring
	srv      *httptest.Server
	key      *ecdsa.PrivateKey // agent-jwt's signing key
	pings    chan *http.Request
	pingBody chan string
}

func newEnv(t *testing.T) *env { return newEnvWith(t, false, 0) }

// newEnvWith builds an env; with realTime the clock is time.Now (for peers
// that keep their own time), and interval is the polling interval.
func newEnvWith(t *testing.T, realTime bool, interval time.Duration) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, pings: make(chan *http.Request, 4), pingBody: make(chan string, 4)}
	now := e.clock.Now
	if realTime {
		now = time.Now
	}
	e.now = now
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i)
	}
	e.keyring, err = tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	minter, err := tokens.NewMinter(e.keyring, tokens.MinterOptions{Issuer: e.srv.URL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(minter.Close)

	pingSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.pings <- r
		e.pingBody <- string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(pingSrv.Close)

	e.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var onEvent func(approvals.Event)
	e.store, err = approvals.Open(ctx, db, approvals.Options{Now: now, OnEvent: func(ev approvals.Event) {
		if onEvent != nil {
			onEvent(ev)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.ciba, err = oauth.NewCIBA(oauth.CIBAConfig{
		Issuer: e.srv.URL,
		Clients: []oauth.Client{
			{ID: secretClient, SecretHash: sha256Hex(secret)},
			{ID: jwtClient, JWKS: jwksOf(t, &e.key.PublicKey)},
			{ID: pingClient, SecretHash: sha256Hex(secret), DeliveryMode: oauth.DeliveryPing, NotificationEndpoint: pingSrv.URL + "/cb"},
		},
		Now:      now,
		Interval: interval,
	}, e.store, minter, nil)
	if err != nil {
		t.Fatal(err)
	}
	onEvent = e.ciba.OnEvent
	t.Cleanup(func() { e.ciba.Close() })
	e.ciba.Routes(mux)
	return e
}

func jwksOf(t *testing.T, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	raw, err := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-256", "kid": "agent-key", "alg": "ES256", "use": "sig", "x": b64(x), "y": b64(y),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertion signs a client assertion for agent-jwt; edit changes claims.
func (e *env) assertion(edit func(jwt.MapClaims)) string {
	e.t.Helper()
	now := e.clock.Now()
	claims := jwt.MapClaims{
		"iss": jwtClient, "sub": jwtClient, "aud": e.srv.URL,
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
	}
	if edit != nil {
		edit(claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = "agent-key"
	s, err := tok.SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// response is a decoded endpoint answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r response) str(k string) string { s, _ := r.Body[k].(string); return s }

// post sends a form to path; auth is "secret", "ping", "none" or a
// client assertion.
func (e *env) post(path, auth string, form url.Values) response {
	e.t.Helper()
	switch auth {
	case "secret", "ping", "none", "bad-secret":
	default:
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", auth)
	}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch auth {
	case "secret":
		req.SetBasicAuth(secretClient, secret)
	case "ping":
		req.SetBasicAuth(pingClient, secret)
	case "bad-secret":
		req.SetBasicAuth(secretClient, "wrong")
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := response{Status: resp.StatusCode, Header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&r.Body); err != nil {
		e.t.Fatalf("%s %s: decode body: %v", req.Method, req.URL.Path, err)
	}
	return r
}

// authorize opens a backchannel request for agent-secret and returns its
// auth_req_id.
func (e *env) authorize(extra url.Values) string {
	e.t.Helper()
	form := url.Values{"login_hint": {user}, "scope": {"openid payments"}}
	for k, v := range extra {
		form[k] = v
	}
	auth := "secret"
	if a := form.Get("_auth"); a != "" {
		auth = a
		form.Del("_auth")
	}
	r := e.post("/bc-authorize", auth, form)
	if r.Status != http.StatusOK {
		e.t.Fatalf("bc-authorize: %d %v", r.Status, r.Body)
	}
	return r.str("auth_req_id")
}

func (e *env) token(auth, id string) response {
	e.t.Helper()
	return e.post("/token", auth, url.Values{"grant_type": {oauth.GrantTypeCIBA}, "auth_req_id": {id}})
}

// verify checks a minted access token against writ's JWKS and returns its
// claims.
func (e *env) verify(token string) jwt.MapClaims {
	e.t.Helper()
	kf, err := keyfunc.NewJWKSetJSON(e.keyring.JWKS())
	if err != nil {
		e.t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, kf.Keyfunc, jwt.WithTimeFunc(e.now)); err != nil {
		e.t.Fatalf("minted token does not verify: %v", err)
	}
	return claims
}
