package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/gowebpki/jcs"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/tokens"
)

// Minter mints writ tokens; *tokens.Minter is one.
type Minter interface {
	Mint(ctx context.Context, r tokens.MintRequest) (tokens.Minted, error)
}

// maxForm caps a form-encoded request body.
const maxForm = 64 << 10

// slowDownStep is what each slow_down adds to a request's interval
// (RFC 8628 section 3.5, which CIBA Core 1.0 section 11 follows).
const slowDownStep = 5 * time.Second

// CIBA serves the backchannel authentication and token endpoints of
// OpenID CIBA Core 1.0 over writ's approval store.
type CIBA struct {
	cfg       CIBAConfig
	approvals *approvals.Store
	minter    Minter
	log       *slog.Logger
	now       func() time.Time
	http      *http.Client
	dir       *Directory

	mu       sync.Mutex
	requests map[string]*authRequest // by auth_req_id

	pingCtx    context.Context
	pingCancel context.CancelFunc
	pings      sync.WaitGroup
}

// authRequest is what CIBA keeps about an open auth_req_id.
type authRequest struct {
	client              string
	pingEndpoint        string // the client's notification endpoint in ping mode
	scopes              []string
	details             json.RawMessage // canonical authorization_details, or nil
	notificationToken   string
	expiresAt           time.Time
	interval            time.Duration
	lastPoll            time.Time
	redeeming, redeemed bool
	pinged              bool
}

// NewCIBA returns the CIBA endpoints for cfg. Close it to stop pending
// ping notifications.
func NewCIBA(cfg CIBAConfig, store *approvals.Store, minter Minter, logger *slog.Logger) (*CIBA, error) {
	if cfg.Issuer == "" || !strings.HasPrefix(cfg.Issuer, "http") {
		return nil, fmt.Errorf("%w: issuer must be an http(s) URL", ErrConfig)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if store == nil || minter == nil {
		return nil, fmt.Errorf("%w: approval store and minter are required", ErrConfig)
	}
	switch {
	case cfg.Directory == nil && len(cfg.Clients) == 0:
		return nil, fmt.Errorf("%w: no clients", ErrConfig)
	case cfg.Directory != nil && len(cfg.Clients) > 0:
		return nil, fmt.Errorf("%w: clients belong in the directory when one is given", ErrConfig)
	}
	if cfg.DefaultExpiry < 0 || cfg.MaxExpiry < 0 || cfg.Interval < 0 || cfg.TokenTTL < 0 {
		return nil, fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if cfg.DefaultExpiry == 0 {
		cfg.DefaultExpiry = DefaultExpiry
	}
	if cfg.MaxExpiry == 0 {
		cfg.MaxExpiry = DefaultMaxExpiry
	}
	if cfg.DefaultExpiry > cfg.MaxExpiry {
		return nil, fmt.Errorf("%w: default expiry %v exceeds max expiry %v", ErrConfig, cfg.DefaultExpiry, cfg.MaxExpiry)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interval%time.Second != 0 {
		return nil, fmt.Errorf("%w: interval must be whole seconds", ErrConfig)
	}
	if cfg.Audience == "" {
		cfg.Audience = cfg.Issuer
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &CIBA{
		cfg: cfg, approvals: store, minter: minter, log: logger, now: cfg.Now, http: cfg.HTTPClient,
		dir:      cfg.Directory,
		requests: map[string]*authRequest{},
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if c.dir == nil {
		dir, err := NewDirectory(DirectoryConfig{Clients: cfg.Clients, Now: c.now, Logger: logger})
		if err != nil {
			return nil, err
		}
		c.dir = dir
	}
	c.pingCtx, c.pingCancel = context.WithCancel(context.Background())
	return c, nil
}

// Close cancels ping notifications in flight and waits for them.
func (c *CIBA) Close() error {
	c.pingCancel()
	c.pings.Wait()
	return nil
}

// Routes registers POST /bc-authorize on mux. The CIBA grant is served by
// the token endpoint (TokenEndpoint), and the metadata by discovery.
func (c *CIBA) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /bc-authorize", c.handleAuthorize)
}

// Directory is the client directory CIBA authenticates clients with; give
// the same one to the token endpoint.
func (c *CIBA) Directory() *Directory { return c.dir }

func (c *CIBA) authorizeURL() string { return c.cfg.Issuer + "/bc-authorize" }
func (c *CIBA) tokenURL() string     { return c.cfg.Issuer + "/token" }

// audiences a client assertion may name (CIBA Core 1.0 section 7.1 and
// RFC 7523): the issuer, the token endpoint, the backchannel endpoint.
func (c *CIBA) audiences() []string {
	return []string{c.cfg.Issuer, c.tokenURL(), c.authorizeURL()}
}

// Metadata returns the CIBA part of writ's authorization server metadata.
func (c *CIBA) Metadata() map[string]any {
	methods := c.dir.authMethods()
	pkjwt := slices.Contains(methods, authPrivateKeyJWT)
	m := map[string]any{
		"issuer":                              c.cfg.Issuer,
		"jwks_uri":                            c.cfg.Issuer + "/.well-known/jwks.json",
		"token_endpoint":                      c.tokenURL(),
		"backchannel_authentication_endpoint": c.authorizeURL(),
		"backchannel_token_delivery_modes_supported": []string{DeliveryPoll, DeliveryPing},
		"backchannel_user_code_parameter_supported":  false,
		"grant_types_supported":                      []string{GrantTypeCIBA},
		"token_endpoint_auth_methods_supported":      methods,
		"scopes_supported":                           []string{"openid"},
	}
	if pkjwt {
		m["token_endpoint_auth_signing_alg_values_supported"] = assertionAlgorithms
	}
	return m
}

// repeatable are the parameters that may appear more than once: RFC 8707
// resource and RFC 8693 audience.
var repeatable = map[string]bool{"resource": true, "audience": true}

// parseForm reads a form-encoded POST body and refuses repeated
// parameters (RFC 6749 section 3.1) other than the repeatable ones.
func parseForm(w http.ResponseWriter, r *http.Request) *oauthError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return badRequest(codeInvalidRequest, "body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return badRequest(codeInvalidRequest, "malformed form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && !repeatable[k] {
			return badRequest(codeInvalidRequest, "parameter "+strconv.Quote(k)+" repeated")
		}
	}
	return nil
}

// handleAuthorize is the backchannel authentication endpoint (CIBA Core
// 1.0 section 7).
func (c *CIBA) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if e := parseForm(w, r); e != nil {
		writeError(w, e)
		return
	}
	client, e := c.dir.authenticate(r, c.audiences())
	if e == nil {
		e = client.refusal()
	}
	if e == nil && !client.mayUse(GrantTypeCIBA) {
		e = badRequest(codeUnauthorizedClient, "the client is not registered for the CIBA grant")
	}
	if e != nil {
		writeError(w, e)
		return
	}
	ar, call, ttl, bindingMessage, e := c.parseAuthRequest(r, client)
	if e != nil {
		writeError(w, e)
		return
	}
	res, err := c.approvals.Gate(r.Context(), call, approvals.Requirement{BindingMessage: bindingMessage, TTL: ttl})
	if err != nil || res.Status != approvals.Pending {
		c.log.Error("ciba: open approval request", "client_id", client.ID, "error", err, "status", string(res.Status))
		writeError(w, &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "approval request could not be opened"})
		return
	}
	now := c.now()
	ar.expiresAt = now.Add(res.ExpiresIn)
	ar.interval = c.cfg.Interval
	c.mu.Lock()
	for id, old := range c.requests {
		if !old.expiresAt.After(now) {
			delete(c.requests, id)
		}
	}
	c.requests[res.ID] = ar
	c.mu.Unlock()
	c.log.Info("ciba: authentication request", "client_id", client.ID, "auth_req_id_sha256", digest(res.ID), "expires_in", res.ExpiresIn)
	writeJSON(w, http.StatusOK, map[string]any{
		"auth_req_id": res.ID,
		"expires_in":  int64(res.ExpiresIn / time.Second),
		"interval":    int64(c.cfg.Interval / time.Second),
	})
}

func (c *CIBA) parseAuthRequest(r *http.Request, client *client) (*authRequest, approvals.Call, time.Duration, string, *oauthError) {
	f := r.PostForm
	fail := func(e *oauthError) (*authRequest, approvals.Call, time.Duration, string, *oauthError) {
		return nil, approvals.Call{}, 0, "", e
	}
	if f.Has("request") {
		return fail(badRequest(codeInvalidRequest, "signed authentication requests are not supported"))
	}
	// Exactly one hint.
	hints := 0
	for _, k := range []string{"login_hint", "id_token_hint", "login_hint_token"} {
		if f.Get(k) != "" {
			hints++
		}
	}
	if hints != 1 {
		return fail(badRequest(codeInvalidRequest, "exactly one of login_hint, id_token_hint and login_hint_token is required"))
	}
	user := f.Get("login_hint")
	if user == "" {
		return fail(badRequest(codeInvalidRequest, "only login_hint is supported"))
	}
	scope := f.Get("scope")
	if scope == "" {
		return fail(badRequest(codeInvalidRequest, "scope is required"))
	}
	scopes := strings.Fields(scope)
	hasOpenID := false
	for _, s := range scopes {
		hasOpenID = hasOpenID || s == "openid"
		if !tokens.IsScopeToken(s) {
			return fail(badRequest(codeInvalidScope, "scope is malformed"))
		}
	}
	if !hasOpenID {
		return fail(badRequest(codeInvalidScope, "scope must include openid"))
	}
	// What the user is asked to approve never reaches past what the agent
	// registered (openid aside: it names the user, not a permission).
	for _, s := range scopes {
		if client.hasScope && s != "openid" && !slices.Contains(client.Scopes, s) {
			return fail(badRequest(codeInvalidScope, "scope is wider than the client's registered scope"))
		}
	}
	if f.Has("user_code") {
		return fail(badRequest(codeInvalidRequest, "user_code is not supported"))
	}
	ar := &authRequest{client: client.ID, scopes: scopes}
	if client.mode() == DeliveryPing {
		ar.pingEndpoint = client.notificationEndpoint
		ar.notificationToken = f.Get("client_notification_token")
		if ar.notificationToken == "" {
			return fail(badRequest(codeInvalidRequest, "client_notification_token is required in ping mode"))
		}
		if len(ar.notificationToken) > 1024 || !isBearerToken(ar.notificationToken) {
			return fail(badRequest(codeInvalidRequest, "client_notification_token is not an RFC 6750 bearer token"))
		}
	}
	bindingMessage := f.Get("binding_message")
	if len(bindingMessage) > MaxBindingMessage || strings.ContainsFunc(bindingMessage, unicode.IsControl) {
		return fail(badRequest(codeInvalidBindingMessage, "binding_message is too long or contains control characters"))
	}
	ttl := c.cfg.DefaultExpiry
	if v := f.Get("requested_expiry"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fail(badRequest(codeInvalidRequest, "requested_expiry must be a positive integer"))
		}
		ttl = c.cfg.MaxExpiry
		if n < int64(c.cfg.MaxExpiry/time.Second) {
			ttl = time.Duration(n) * time.Second
		}
	}
	call := approvals.Call{
		User:   user,
		Agent:  client.ID,
		Action: "ciba " + strings.Join(scopes, " "),
	}
	if v := f.Get("authorization_details"); v != "" {
		canonical, e := canonicalDetails(v)
		if e != nil {
			return fail(e)
		}
		ar.details = canonical
		call.ArgumentsSHA256 = digest(string(canonical))
	}
	// Every backchannel request is its own approval: a fresh handle in the
	// resource keeps two identical requests from sharing one approval, so
	// each auth_req_id is redeemed by exactly one token request.
	handle, err := randomHandle()
	if err != nil {
		return fail(&oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "no randomness"})
	}
	call.Resource = "ciba:" + client.ID + ":" + handle
	return ar, call, ttl, bindingMessage, nil
}

// canonicalDetails checks that v is an RFC 9396 authorization_details
// value (a JSON array of objects, each with a string type) and returns it
// in RFC 8785 canonical form.
func canonicalDetails(v string) (json.RawMessage, *oauthError) {
	bad := func(d string) (json.RawMessage, *oauthError) {
		return nil, badRequest(codeInvalidAuthorizationDetails, d)
	}
	var details []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &details); err != nil || details == nil {
		return bad("authorization_details must be a JSON array of objects")
	}
	if len(details) == 0 {
		return bad("authorization_details must not be empty")
	}
	for i, d := range details {
		var typ string
		if d == nil || json.Unmarshal(d["type"], &typ) != nil || typ == "" {
			return bad("authorization_details[" + strconv.Itoa(i) + "] has no string type")
		}
	}
	canonical, err := jcs.Transform([]byte(v))
	if err != nil {
		return bad("authorization_details cannot be canonicalized")
	}
	return canonical, nil
}

// grant answers the CIBA grant at the token endpoint (CIBA Core 1.0
// sections 10 and 11) for an authenticated client.
func (c *CIBA) grant(ctx context.Context, client *client, form url.Values) (*issuance, *oauthError) {
	id := form.Get("auth_req_id")
	if id == "" {
		return nil, badRequest(codeInvalidRequest, "auth_req_id is required")
	}
	return c.redeem(ctx, client, id)
}

var errInvalidGrant = badRequest(codeInvalidGrant, "auth_req_id is unknown, was issued to another client, or was already used")

// redeem answers one token request for id.
func (c *CIBA) redeem(ctx context.Context, client *client, id string) (*issuance, *oauthError) {
	req, err := c.approvals.Get(ctx, id)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil, errInvalidGrant
	}
	if err != nil {
		c.log.Error("ciba: read approval request", "error", err)
		return nil, &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "approval request could not be read"}
	}
	if req.Call.Agent != client.ID || !strings.HasPrefix(req.Call.Resource, "ciba:"+client.ID+":") {
		return nil, errInvalidGrant
	}
	now := c.now()
	c.mu.Lock()
	ar := c.requests[id]
	if ar == nil {
		// Opened before a restart: poll without the interval's memory.
		ar = &authRequest{client: client.ID, interval: c.cfg.Interval, expiresAt: req.ExpiresAt}
		c.requests[id] = ar
	}
	switch {
	case ar.redeemed || ar.redeeming:
		c.mu.Unlock()
		return nil, errInvalidGrant
	case req.Status == approvals.Pending && !ar.lastPoll.IsZero() && now.Sub(ar.lastPoll) < ar.interval:
		ar.interval += slowDownStep
		ar.lastPoll = now
		c.mu.Unlock()
		return nil, badRequest(codeSlowDown, "polling faster than the interval; the interval is now "+strconv.Itoa(int(ar.interval/time.Second))+" seconds")
	}
	ar.lastPoll = now
	if req.Status == approvals.Approved {
		ar.redeeming = true
	}
	c.mu.Unlock()

	switch req.Status {
	case approvals.Pending:
		return nil, badRequest(codeAuthorizationPending, "the user has not yet decided")
	case approvals.Denied:
		return nil, badRequest(codeAccessDenied, "the user denied the request")
	case approvals.Expired:
		return nil, badRequest(codeExpiredToken, "the auth_req_id has expired")
	case approvals.Consumed:
		return nil, errInvalidGrant
	case approvals.Approved:
	default:
		return nil, errInvalidGrant
	}

	iss, e := c.issue(ctx, client, req, ar)
	c.mu.Lock()
	ar.redeeming = false
	ar.redeemed = e == nil
	c.mu.Unlock()
	return iss, e
}

// issue takes the approval's single use and mints the token. The token
// endpoint records and hands it out: if its evidence record is not kept,
// the approval stays used and the client starts over.
func (c *CIBA) issue(ctx context.Context, client *client, req approvals.Request, ar *authRequest) (*issuance, *oauthError) {
	decisionID, e := newDecisionID()
	if e != nil {
		c.log.Error("ciba: no decision id", "client_id", client.ID)
		return nil, e
	}
	call := req.Call
	call.DecisionID = decisionID
	res, err := c.approvals.Gate(ctx, call, approvals.Requirement{BindingMessage: req.BindingMessage, TTL: req.TTL})
	if err != nil {
		c.log.Error("ciba: consume approval", "error", err)
		return nil, &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "approval could not be used"}
	}
	switch {
	case res.Status == approvals.Expired:
		return nil, badRequest(codeExpiredToken, "the auth_req_id has expired")
	case res.Status != approvals.Approved || res.ID != req.ID:
		return nil, errInvalidGrant
	}
	scopes := ar.scopes
	if scopes == nil {
		scopes = strings.Fields(strings.TrimPrefix(req.Call.Action, "ciba "))
	}
	mreq := tokens.MintRequest{
		User:       req.Call.User,
		Agent:      client.ID,
		Actors:     []string{client.ID},
		Audience:   c.cfg.Audience,
		Scopes:     scopes,
		Tenant:     client.Tenant,
		TTL:        c.cfg.TokenTTL,
		ApprovalID: req.ID,
	}
	// The token carries no decision_id (see TokenEndpoint.mint); its
	// evidence record has the decision id and names the token's jti.
	minted, err := c.minter.Mint(ctx, mreq)
	mreq.DecisionID = call.DecisionID
	if err != nil {
		c.log.Error("ciba: mint", "client_id", client.ID, "error", err)
		return nil, &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "token could not be issued"}
	}
	body := map[string]any{
		"access_token": minted.Token.Reveal(),
		"token_type":   "Bearer",
		"expires_in":   int64(minted.ExpiresAt.Sub(c.now()) / time.Second),
		"scope":        strings.Join(minted.Scopes, " "),
	}
	if ar.details != nil {
		body["authorization_details"] = ar.details
	}
	return &issuance{body: body, minted: minted, req: mreq, approval: &audit.Approval{
		ID:        res.ID,
		Approver:  res.Approver,
		Outcome:   string(res.Status),
		Requested: res.RequestedAt,
		Decided:   res.DecidedAt,
	}}, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		challenge := `Bearer error="invalid_client"`
		if e.basic {
			challenge = `Basic realm="writ"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// isBearerToken reports whether s has RFC 6750 b64token syntax.
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, r := range body {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/", r)) {
			return false
		}
	}
	return true
}
