package oauth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
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

	resourceA = "https://mcp.example.com/mcp"
	resourceB = "https://tickets.example.com/api"
	idpIssuer = "https://idp.example"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// keptEvidence forwards to writ's real evidence log and keeps a copy of
// each record; fail makes Append refuse.
type keptEvidence struct {
	log  *audit.Log
	mu   sync.Mutex
	recs []audit.Record
	fail error
}

func (e *keptEvidence) Append(rec audit.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	if err := e.log.Append(rec); err != nil {
		return err
	}
	e.recs = append(e.recs, rec)
	return nil
}

func (e *keptEvidence) records() []audit.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.recs)
}

// refuse makes every later Append fail with err.
func (e *keptEvidence) refuse(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail = err
}

// env is writ's OAuth face (CIBA and the token endpoint) over a real
// database, approval store, agent registry, revocation store, minter and
// verifier.
type env struct {
	t        testing.TB
	mux      *http.ServeMux
	clock    *clock
	now      func() time.Time // the clock every part uses
	db       *store.DB
	store    *approvals.Store
	agents   *agents.Store
	revs     *tokens.Revocations
	dir      *oauth.Directory
	ciba     *oauth.CIBA
	te       *oauth.TokenEndpoint
	keyring  *tokens.Keyring
	minter   *tokens.Minter
	verifier *tokens.Verifier
	evidence *keptEvidence // the token endpoint's, over a running evidence log
	srv      *httptest.Server
	key      *ecdsa.PrivateKey // agent-jwt's signing key
	idpKey   *ecdsa.PrivateKey // the trusted IdP's signing key
	logs     *syncBuffer       // everything the endpoints logged
	pings    chan *http.Request
	pingBody chan string
}

// envOptions vary an env.
type envOptions struct {
	realTime  bool
	interval  time.Duration
	resources []string // default resourceA and resourceB
	token     oauth.TokenConfig
	documents oauth.MetadataDocuments
	http      *http.Client // the directory's client for jwks_uri
	// noEvidence leaves the token endpoint without an evidence log.
	noEvidence bool
	// docScopes and docGrants bound metadata-document clients.
	docScopes, docGrants []string
}

func newEnv(t testing.TB) *env { return newEnvOpts(t, envOptions{}) }

// newEnvWith builds an env; with realTime the clock is time.Now (for peers
// that keep their own time), and interval is the polling interval.
func newEnvWith(t testing.TB, realTime bool, interval time.Duration) *env {
	return newEnvOpts(t, envOptions{realTime: realTime, interval: interval})
}

func newEnvOpts(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, pings: make(chan *http.Request, 4), pingBody: make(chan string, 4), logs: &syncBuffer{}}
	now := e.clock.Now
	if o.realTime {
		now = time.Now
	}
	e.now = now
	if o.resources == nil {
		o.resources = []string{resourceA, resourceB}
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i)
	}
	alog, err := audit.Open(ctx, db, audit.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.evidence = &keptEvidence{log: alog}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- alog.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("evidence log: %v", err)
		}
		if err := alog.Close(context.Background()); err != nil {
			t.Errorf("evidence log: %v", err)
		}
	})
	e.keyring, err = tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.mux = mux
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	minter, err := tokens.NewMinter(e.keyring, tokens.MinterOptions{Issuer: e.srv.URL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(minter.Close)
	e.minter = minter

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
	e.idpKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.agents, err = agents.Open(ctx, db, agents.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e.revs, err = tokens.OpenRevocations(ctx, db, tokens.RevocationOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier, err = tokens.NewVerifier(ctx, []tokens.IssuerConfig{
		{Issuer: idpIssuer, JWKS: jwksOf(t, &e.idpKey.PublicKey), Audiences: o.resources, Algorithms: []string{"ES256"}},
		{Issuer: e.srv.URL, KeySet: e.keyring.JWKS, Audiences: o.resources},
	}, tokens.VerifierOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.verifier.Close)
	e.dir, err = oauth.NewDirectory(oauth.DirectoryConfig{
		Clients: []oauth.Client{
			{ID: secretClient, SecretHash: sha256Hex(secret)},
			{ID: jwtClient, JWKS: jwksOf(t, &e.key.PublicKey)},
			{ID: pingClient, SecretHash: sha256Hex(secret), DeliveryMode: oauth.DeliveryPing, NotificationEndpoint: pingSrv.URL + "/cb"},
		},
		Agents:         e.agents,
		Documents:      o.documents,
		DocumentScopes: o.docScopes,
		DocumentGrants: o.docGrants,
		DB:             db,
		HTTPClient:     o.http,
		Now:            now,
		Logger:         logger,
	})
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
		Issuer:    e.srv.URL,
		Directory: e.dir,
		Now:       now,
		Interval:  o.interval,
	}, e.store, minter, logger)
	if err != nil {
		t.Fatal(err)
	}
	onEvent = e.ciba.OnEvent
	t.Cleanup(func() { e.ciba.Close() })
	e.ciba.Routes(mux)
	var evidence oauth.Evidence = e.evidence
	if o.noEvidence {
		evidence = nil
	}
	e.te, err = oauth.NewTokenEndpoint(oauth.TokenEndpointConfig{
		Issuer:      e.srv.URL,
		Token:       o.token,
		Directory:   e.dir,
		Minter:      minter,
		Verifier:    e.verifier,
		Keys:        e.keyring,
		Revocations: e.revs,
		Resources:   o.resources,
		CIBA:        e.ciba,
		Evidence:    evidence,
		Now:         now,
		Logger:      logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.te.Routes(mux)
	// Discovery proper is served elsewhere; peers here need only these.
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		m := e.ciba.Metadata()
		maps.Copy(m, e.te.Metadata())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	})
	return e
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jwksOf(t testing.TB, pub *ecdsa.PublicKey) []byte {
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
	return e.assertionFor(jwtClient, e.key, edit)
}

// assertionFor signs a client assertion for client with key (kid
// agent-key); edit changes claims.
func (e *env) assertionFor(client string, key *ecdsa.PrivateKey, edit func(jwt.MapClaims)) string {
	e.t.Helper()
	now := e.clock.Now()
	claims := jwt.MapClaims{
		"iss": client, "sub": client, "aud": e.srv.URL,
		"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
	}
	if edit != nil {
		edit(claims)
	}
	return sign(e.t, key, "agent-key", claims)
}

func sign(t testing.TB, key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// idpToken is a user's access token from the trusted IdP: sub user-7,
// aud resourceA, scope "tools.read tools.call", tenant acme, five minutes
// to live; edit changes claims.
func (e *env) idpToken(edit func(jwt.MapClaims)) string {
	e.t.Helper()
	now := e.clock.Now()
	claims := jwt.MapClaims{
		"iss": idpIssuer, "sub": user, "aud": resourceA, "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "jti": rand.Text(), "scope": "tools.read tools.call", "tenant": "acme",
	}
	if edit != nil {
		edit(claims)
	}
	return sign(e.t, e.idpKey, "agent-key", claims)
}

// response is a decoded endpoint answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (r response) str(k string) string { s, _ := r.Body[k].(string); return s }

// post sends a form to path; auth is "secret", "ping", "none",
// "bad-secret", "basic <client_id> <secret>" or a client assertion.
func (e *env) post(path, auth string, form url.Values) response {
	e.t.Helper()
	var basicID, basicSecret string
	if rest, ok := strings.CutPrefix(auth, "basic "); ok {
		basicID, basicSecret, _ = strings.Cut(rest, " ")
		auth = "basic"
	}
	switch auth {
	case "secret", "ping", "none", "bad-secret", "basic":
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
	case "basic":
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
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
	if req.URL.Path == "/revoke" && resp.StatusCode == http.StatusOK {
		if b, _ := io.ReadAll(resp.Body); len(b) != 0 {
			e.t.Fatalf("revocation answered with a body: %q", b)
		}
		return r
	}
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

// agentSpec describes an agent registered with an OAuth client.
type agentSpec struct {
	id      string
	secret  string // client_secret_basic when set
	jwks    []byte // private_key_jwt keys, inline
	jwksURI string // private_key_jwt keys, by URL
	method  string // overrides token_endpoint_auth_method
	grants  []string
	scope   string
	tenant  string
	status  agents.Status
	expires time.Time // of the secret
}

// ccGrants are the grants most test agents register.
var ccGrants = []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}

// register adds an agent and its client to the registry.
func (e *env) register(a agentSpec) {
	e.t.Helper()
	m := agents.ClientMetadata{GrantTypes: a.grants, Scope: a.scope, JWKS: a.jwks, JWKSURI: a.jwksURI, ClientName: a.id}
	c := agents.Client{ClientID: a.id, SecretExpiresAt: a.expires}
	switch {
	case a.secret != "":
		m.TokenEndpointAuthMethod = "client_secret_basic"
		sum := sha256.Sum256([]byte(a.secret))
		c.SecretHash = sum[:]
	default:
		m.TokenEndpointAuthMethod = "private_key_jwt"
	}
	if a.method != "" {
		m.TokenEndpointAuthMethod = a.method
	}
	c.Metadata = m
	if a.status == "" {
		a.status = agents.Active
	}
	if err := e.agents.RegisterClient(context.Background(), agents.Agent{ClientID: a.id, Tenant: a.tenant, Status: a.status}, c); err != nil {
		e.t.Fatal(err)
	}
}

// ccToken gets a client_credentials token for a secret client.
func (e *env) ccToken(auth string, form url.Values) string {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("grant_type", oauth.GrantTypeClientCredentials)
	if !form.Has("resource") && !form.Has("audience") {
		form.Set("resource", resourceA)
	}
	r := e.post("/token", auth, form)
	if r.Status != http.StatusOK {
		e.t.Fatalf("client_credentials: %d %v", r.Status, r.Body)
	}
	return r.str("access_token")
}

// exchange asks for a token exchange; extra adds or overrides parameters.
func (e *env) exchange(auth, subject string, extra url.Values) response {
	e.t.Helper()
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
		"resource":           {resourceA},
	}
	for k, v := range extra {
		if len(v) == 0 {
			form.Del(k)
			continue
		}
		form[k] = v
	}
	return e.post("/token", auth, form)
}
