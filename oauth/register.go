package oauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/writ-dev/writ/tokens"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/audit"
)

// Error codes of RFC 7591 section 3.2.2 and RFC 6750 section 3.1.
const (
	codeInvalidRedirectURI          = agents.CodeInvalidRedirectURI
	codeInvalidClientMetadata       = agents.CodeInvalidClientMetadata
	codeInvalidSoftwareStatement    = "invalid_software_statement"
	codeUnapprovedSoftwareStatement = "unapproved_software_statement"
	codeInvalidBearerToken          = "invalid_token"
)

// Registration policies: who may register an agent at POST /register.
const (
	// PolicyClosed serves no registration endpoint (the default).
	PolicyClosed = "closed"
	// PolicyOpen lets anyone register; agents land in RegistrationConfig.Tenant.
	PolicyOpen = "open"
	// PolicyInitialAccessToken needs an initial access token (RFC 7591
	// section 3) as bearer; the token's entry gives the owner and tenant.
	PolicyInitialAccessToken = "initial_access_token"
	// PolicySoftwareStatement needs a software statement signed by a
	// trusted issuer.
	PolicySoftwareStatement = "software_statement"
)

// Defaults and limits of the registration endpoint.
const (
	DefaultRegistrationPerMinute = 30
	DefaultRegistrationBurst     = 10
	// MaxRegistrationBody caps a registration request body, in bytes;
	// larger bodies get 413.
	MaxRegistrationBody = 64 << 10
)

// RegistrationConfig configures dynamic client registration (RFC 7591)
// and its management (RFC 7592). Its YAML form is the registration block
// of writ's configuration.
type RegistrationConfig struct {
	// Policy is closed (default), open, initial_access_token or
	// software_statement.
	Policy string `yaml:"policy"`
	// NewAgents is the status of newly registered agents: pending (default;
	// an operator approves them) or active.
	NewAgents string `yaml:"new_agents"`
	// Tenant is the tenant of agents registered under the open policy
	// (unless a software statement names one).
	Tenant string `yaml:"tenant"`
	// InitialAccessTokens are the accepted initial access tokens, by
	// SHA-256, for the initial_access_token policy.
	InitialAccessTokens []InitialAccessToken `yaml:"initial_access_tokens"`
	// SoftwareStatements are the trusted statement issuers. Required for
	// the software_statement policy; under the other policies a request
	// that carries a statement must still present a valid one.
	SoftwareStatements SoftwareStatementConfig `yaml:"software_statements"`
	// RateLimit limits registration requests per client address, and ten
	// times that over all addresses.
	RateLimit RateLimit `yaml:"rate_limit"`
	// ClientSecretTTL is how long an issued client_secret works; zero
	// (default) means it does not expire.
	ClientSecretTTL time.Duration `yaml:"client_secret_ttl"`
	// Scopes are the scopes an agent may register; a request or software
	// statement naming any other is invalid_client_metadata. writ's
	// configuration fills an empty list with the scopes of the configured
	// resources; when that is empty too, no scope may be registered (a
	// registration without a scope always may).
	Scopes []string `yaml:"scopes"`
	// GrantTypes are the grant types an agent may register; empty means
	// client_credentials and token exchange. The CIBA grant, with which an
	// agent can ask any user for an approval, is registrable only when
	// listed here.
	GrantTypes []string `yaml:"grant_types"`
	// MetadataDocuments accepts https URLs as client_id (Client ID Metadata
	// Documents). It is read by the client directory, not by the Registrar.
	MetadataDocuments bool `yaml:"metadata_documents"`

	// Issuer is writ's issuer URL, the base of registration_client_uri.
	// It is the configuration's top-level issuer.
	Issuer string `yaml:"-"`
	// Now is the clock; time.Now when nil.
	Now func() time.Time `yaml:"-"`
	// HTTPClient fetches statement issuers' jwks_uri; a client with a
	// 10 second timeout when nil.
	HTTPClient *http.Client `yaml:"-"`
}

// InitialAccessToken is one accepted initial access token.
type InitialAccessToken struct {
	// SHA256 is the lowercase hex SHA-256 of the token.
	SHA256 string `yaml:"sha256"`
	// Owner and Tenant are given to agents registered with the token.
	Owner  string `yaml:"owner"`
	Tenant string `yaml:"tenant"`
}

// Enabled reports whether the registration endpoint is served.
func (c RegistrationConfig) Enabled() bool { return c.Policy != "" && c.Policy != PolicyClosed }

// AllowedGrantTypes are the grant types an agent may register:
// GrantTypes, or the default (client_credentials and token exchange).
func (c RegistrationConfig) AllowedGrantTypes() []string {
	if len(c.GrantTypes) == 0 {
		return slices.Clone(defaultRegistrationGrants)
	}
	return slices.Clone(c.GrantTypes)
}

// Validate checks c. Key sets are read by NewRegistrar.
func (c RegistrationConfig) Validate() error {
	switch c.Policy {
	case "", PolicyClosed:
		return nil
	case PolicyOpen, PolicyInitialAccessToken, PolicySoftwareStatement:
	default:
		return fmt.Errorf("%w: policy %q (want closed, open, initial_access_token or software_statement)", ErrConfig, c.Policy)
	}
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		return fmt.Errorf("%w: issuer must be an http(s) URL", ErrConfig)
	}
	switch agents.Status(c.NewAgents) {
	case "", agents.Pending, agents.Active:
	default:
		return fmt.Errorf("%w: new_agents %q (want pending or active)", ErrConfig, c.NewAgents)
	}
	if c.Policy == PolicyInitialAccessToken && len(c.InitialAccessTokens) == 0 {
		return fmt.Errorf("%w: policy initial_access_token needs initial_access_tokens", ErrConfig)
	}
	for i, t := range c.InitialAccessTokens {
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: initial_access_tokens[%d].sha256 is not 64 hex digits", ErrConfig, i)
		}
	}
	if c.Policy == PolicySoftwareStatement && len(c.SoftwareStatements.Issuers) == 0 {
		return fmt.Errorf("%w: policy software_statement needs software_statements.issuers", ErrConfig)
	}
	if c.RateLimit.PerMinute < 0 || c.RateLimit.Burst < 0 {
		return fmt.Errorf("%w: negative rate_limit", ErrConfig)
	}
	if c.ClientSecretTTL < 0 {
		return fmt.Errorf("%w: negative client_secret_ttl", ErrConfig)
	}
	for i, s := range c.Scopes {
		if !tokens.IsScopeToken(s) {
			return fmt.Errorf("%w: scopes[%d] is not a scope token (RFC 6749 section 3.3)", ErrConfig, i)
		}
	}
	for i, g := range c.GrantTypes {
		if !slices.Contains(registrableGrants, g) {
			return fmt.Errorf("%w: grant_types[%d] %q (want %s)", ErrConfig, i, g, strings.Join(registrableGrants, ", "))
		}
	}
	return nil
}

// registrableGrants are the grant types writ serves to registered agents.
var registrableGrants = []string{agents.GrantClientCredentials, agents.GrantTokenExchange, agents.GrantCIBA}

// defaultRegistrationGrants are the grant types an agent may register when
// RegistrationConfig.GrantTypes is empty: not CIBA, with which an agent
// can ask any user for an approval.
var defaultRegistrationGrants = []string{agents.GrantClientCredentials, agents.GrantTokenExchange}

// Registrar serves POST /register (RFC 7591) and GET, PUT and DELETE
// /register/{client_id} (RFC 7592) over the agent registry.
//
// Secrets: client_id is 128 random bits, client_secret (issued only for
// client_secret_basic) and the registration access token 256 random bits,
// all base64url. Only their SHA-256 is stored. Reading a registration
// (GET) never returns the client_secret, which writ no longer knows; it
// returns client_secret_expires_at and echoes the registration access
// token presented. An update keeps the registration access token and the
// client_secret; it issues a client_secret only when the client moves to
// client_secret_basic from private_key_jwt, and drops it on the way back.
//
// Rate limiting: every request to these endpoints takes a token from its
// address's bucket (the connection's remote address, never a forwarded
// header; IPv6 addresses by /64) and then from the bucket of all
// addresses. An empty bucket is 429 with Retry-After and the error code
// slow_down: no registry defines a rate-limit code for registration, and
// slow_down (RFC 8628 section 3.5) is the registered code that means
// exactly "ask less often".
//
// What may be registered: a registration or update naming a scope outside
// RegistrationConfig.Scopes, or a grant type outside
// RegistrationConfig.GrantTypes, is invalid_client_metadata, whether the
// request or its software statement names it. An update may not widen the
// registration either (RFC 7592 section 2.2 lets the server refuse or
// replace values): its scope must lie within the registered scope, its
// grant types within the registered ones, and an agent registered with a
// scope that keeps the token exchange grant must keep a scope (without one
// an exchange is bounded only by the subject token). An agent that needs
// more registers again, and is reviewed again. Keys (jwks, jwks_uri) and
// the other fields may change.
//
// Who may change a registration: only an active agent updates its
// registration. A suspended agent may neither update nor delete it (a
// delete would erase the suspension, an update change what was suspended)
// and a pending agent may not update what the
// operator is reviewing, though it may withdraw it with a delete. Both get
// 403 (RFC 7592 sections 2.2 and 2.3) with the error code access_denied
// (RFC 6749 section 4.1.2.1: the authorization server denied the request);
// RFC 7592 defines no code for it. Reading stays allowed in every status.
type Registrar struct {
	cfg        RegistrationConfig
	agents     *agents.Store
	evidence   Evidence
	log        *slog.Logger
	now        func() time.Time
	tokens     []initialToken
	statements *statementVerifier
	limiter    *rateLimiter
}

type initialToken struct {
	hash          []byte
	owner, tenant string
}

// NewRegistrar returns the registration endpoints for cfg over the agent
// registry reg. Every registration, update and deletion is an evidence
// record appended to ev. Under the closed policy reg and ev may be nil.
func NewRegistrar(cfg RegistrationConfig, reg *agents.Store, ev Evidence, logger *slog.Logger) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Enabled() && (reg == nil || ev == nil) {
		return nil, fmt.Errorf("%w: agent registry and evidence log are required", ErrConfig)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.Policy == "" {
		cfg.Policy = PolicyClosed
	}
	if cfg.NewAgents == "" {
		cfg.NewAgents = string(agents.Pending)
	}
	if len(cfg.GrantTypes) == 0 {
		cfg.GrantTypes = defaultRegistrationGrants
	}
	if cfg.RateLimit.PerMinute == 0 {
		cfg.RateLimit.PerMinute = DefaultRegistrationPerMinute
	}
	if cfg.RateLimit.Burst == 0 {
		cfg.RateLimit.Burst = DefaultRegistrationBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Registrar{cfg: cfg, agents: reg, evidence: ev, log: logger, now: cfg.Now}
	for _, t := range cfg.InitialAccessTokens {
		h, _ := hex.DecodeString(t.SHA256)
		r.tokens = append(r.tokens, initialToken{hash: h, owner: t.Owner, tenant: t.Tenant})
	}
	var err error
	if r.statements, err = newStatementVerifier(cfg.SoftwareStatements, cfg.HTTPClient, cfg.Now); err != nil {
		return nil, err
	}
	r.limiter = newRateLimiter(cfg.RateLimit)
	return r, nil
}

// Routes registers POST /register and GET, PUT, DELETE
// /register/{client_id} on mux; nothing under the closed policy.
func (r *Registrar) Routes(mux *http.ServeMux) {
	if !r.cfg.Enabled() {
		return
	}
	mux.HandleFunc("POST /register", r.handleRegister)
	mux.HandleFunc("GET /register/{client_id}", r.handleRead)
	mux.HandleFunc("PUT /register/{client_id}", r.handleUpdate)
	mux.HandleFunc("DELETE /register/{client_id}", r.handleDelete)
}

// Endpoint is the registration endpoint's URL for the authorization
// server metadata; empty under the closed policy.
func (r *Registrar) Endpoint() string {
	if !r.cfg.Enabled() {
		return ""
	}
	return r.cfg.Issuer + "/register"
}

// grant is who a registration is made for.
type grant struct {
	owner, tenant string
	statement     string // the verified software statement, returned as sent
}

func (r *Registrar) handleRegister(w http.ResponseWriter, req *http.Request) {
	if e := r.limit(w, req); e != nil {
		r.writeError(w, e)
		return
	}
	g, e := r.authorizeRegistration(req)
	if e != nil {
		r.writeError(w, e)
		return
	}
	fields, e := readRegistrationBody(w, req)
	if e != nil {
		r.writeError(w, e)
		return
	}
	st, e := r.applyStatement(req.Context(), fields)
	if e != nil {
		r.writeError(w, e)
		return
	}
	if st != nil {
		g.statement = string(unquoteRaw(fields["software_statement"]))
		// The initial access token's owner and tenant are the operator's
		// word and win over the statement's.
		if g.owner == "" {
			g.owner = st.owner
		}
		if g.tenant == "" {
			g.tenant = st.tenant
		}
	}
	meta, e := metadataFromFields(fields)
	if e != nil {
		r.writeError(w, e)
		return
	}
	if e := r.checkAllowed(meta); e != nil {
		r.writeError(w, e)
		return
	}
	r.register(w, req, meta, g)
}

func (r *Registrar) register(w http.ResponseWriter, req *http.Request, meta agents.ClientMetadata, g grant) {
	ctx := req.Context()
	now := r.now()
	id, err1 := randomToken(16)
	regToken, err2 := randomToken(32)
	if err := errors.Join(err1, err2); err != nil {
		r.serverError(w, "registration: random source failed", err)
		return
	}
	c := agents.Client{ClientID: id, Metadata: meta, RegistrationTokenHash: sha256Bytes(regToken), IssuedAt: now}
	var secret string
	if meta.TokenEndpointAuthMethod == agents.AuthClientSecretBasic {
		if secret, err1 = randomToken(32); err1 != nil {
			r.serverError(w, "registration: random source failed", err1)
			return
		}
		c.SecretHash = sha256Bytes(secret)
		if r.cfg.ClientSecretTTL > 0 {
			c.SecretExpiresAt = now.Add(r.cfg.ClientSecretTTL)
		}
	}
	a := agents.Agent{ClientID: id, Name: meta.ClientName, Owner: g.owner, Tenant: g.tenant,
		Status: agents.Status(r.cfg.NewAgents), CreatedAt: now}
	if err := r.agents.RegisterClient(ctx, a, c); err != nil {
		r.serverError(w, "registration: agent not stored", err)
		return
	}
	if err := r.record(req, a, "agent_registered", http.StatusCreated,
		"registered under policy "+r.cfg.Policy+" as "+string(a.Status)); err != nil {
		// Without its evidence record the registration does not stand.
		if derr := r.agents.Delete(context.WithoutCancel(ctx), id); derr != nil {
			r.log.Error("registration: agent kept without evidence record", "client_id", id, "error", derr)
		}
		r.serverError(w, "registration: evidence record not kept", err)
		return
	}
	r.log.Info("registration: agent registered", "client_id", id, "tenant", a.Tenant, "owner", a.Owner,
		"status", string(a.Status), "policy", r.cfg.Policy, "software_id", meta.SoftwareID)
	writeJSON(w, http.StatusCreated, r.clientInformation(c, secret, regToken, g.statement))
}

// manage is what every RFC 7592 request goes through: the rate limit and
// the registration access token, and for a change (PUT, DELETE) the
// agent's status. ok is false once the refusal has been written.
func (r *Registrar) manage(w http.ResponseWriter, req *http.Request, change bool) (a agents.Agent, c agents.Client, token string, ok bool) {
	e := r.limit(w, req)
	if e == nil {
		a, c, token, e = r.authorizeClient(req)
	}
	if e == nil && change {
		e = r.mayChange(req, a)
	}
	if e != nil {
		r.writeError(w, e)
		return a, c, token, false
	}
	return a, c, token, true
}

func (r *Registrar) handleRead(w http.ResponseWriter, req *http.Request) {
	_, c, token, ok := r.manage(w, req, false)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, r.clientInformation(c, "", token, ""))
}

func (r *Registrar) handleUpdate(w http.ResponseWriter, req *http.Request) {
	a, old, token, ok := r.manage(w, req, true)
	if !ok {
		return
	}
	fields, e := readRegistrationBody(w, req)
	if e != nil {
		r.writeError(w, e)
		return
	}
	if e := checkUpdateCredentials(fields, old); e != nil {
		r.writeError(w, e)
		return
	}
	st, e := r.applyStatement(req.Context(), fields)
	if e != nil {
		r.writeError(w, e)
		return
	}
	var statement string
	if st != nil {
		if (st.tenant != "" && st.tenant != a.Tenant) || (st.owner != "" && st.owner != a.Owner) {
			r.writeError(w, badRequest(codeInvalidSoftwareStatement, "software statement names another tenant or owner than the agent's"))
			return
		}
		statement = string(unquoteRaw(fields["software_statement"]))
	}
	meta, e := metadataFromFields(fields)
	if e != nil {
		r.writeError(w, e)
		return
	}
	if e := checkNotWider(old.Metadata, meta); e != nil {
		r.writeError(w, e)
		return
	}
	if e := r.checkAllowed(meta); e != nil {
		r.writeError(w, e)
		return
	}
	c := old
	c.Metadata = meta
	var secret string
	switch {
	case meta.TokenEndpointAuthMethod != agents.AuthClientSecretBasic:
		c.SecretHash, c.SecretExpiresAt = nil, time.Time{}
	case c.SecretHash == nil:
		var err error
		if secret, err = randomToken(32); err != nil {
			r.serverError(w, "registration: random source failed", err)
			return
		}
		c.SecretHash = sha256Bytes(secret)
		if r.cfg.ClientSecretTTL > 0 {
			c.SecretExpiresAt = r.now().Add(r.cfg.ClientSecretTTL)
		}
	}
	ctx := req.Context()
	// The status is checked again with the update: a suspension that
	// lands after mayChange still stops it.
	if err := r.agents.UpdateClient(ctx, c, agents.Active); err != nil {
		if errors.Is(err, agents.ErrTransition) || errors.Is(err, agents.ErrNotFound) {
			r.writeError(w, &oauthError{status: http.StatusForbidden, code: codeAccessDenied, description: "the agent's status does not allow changes"})
			return
		}
		r.serverError(w, "registration: update not stored", err)
		return
	}
	if err := r.record(req, a, "agent_updated", http.StatusOK, "client metadata replaced"); err != nil {
		if rerr := r.agents.UpdateClient(context.WithoutCancel(ctx), old); rerr != nil {
			r.log.Error("registration: update kept without evidence record", "client_id", a.ClientID, "error", rerr)
		}
		r.serverError(w, "registration: evidence record not kept", err)
		return
	}
	r.log.Info("registration: agent updated", "client_id", a.ClientID, "tenant", a.Tenant)
	writeJSON(w, http.StatusOK, r.clientInformation(c, secret, token, statement))
}

func (r *Registrar) handleDelete(w http.ResponseWriter, req *http.Request) {
	a, _, _, ok := r.manage(w, req, true)
	if !ok {
		return
	}
	// The status is checked again with the deletion: a suspension that
	// lands after mayChange still stops it.
	if err := r.agents.Delete(req.Context(), a.ClientID, agents.Active, agents.Pending); err != nil {
		if errors.Is(err, agents.ErrTransition) || errors.Is(err, agents.ErrNotFound) {
			r.writeError(w, &oauthError{status: http.StatusForbidden, code: codeAccessDenied, description: "a suspended agent cannot change or delete its registration"})
			return
		}
		r.serverError(w, "registration: agent not deleted", err)
		return
	}
	// The agent is gone whether or not its record is kept: a deletion
	// only takes authority away.
	if err := r.record(req, a, "agent_deleted", http.StatusNoContent, "registration deleted by the client"); err != nil {
		r.log.Error("registration: agent deleted without evidence record", "client_id", a.ClientID, "error", err)
	}
	r.log.Info("registration: agent deleted", "client_id", a.ClientID, "tenant", a.Tenant)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// mayChange refuses an update or delete the agent's status forbids: a
// suspended agent changes nothing, a pending one only withdraws (deletes).
// The status is the registry's, read with the registration.
func (r *Registrar) mayChange(req *http.Request, a agents.Agent) *oauthError {
	var description string
	switch {
	case a.Status == agents.Suspended:
		description = "a suspended agent cannot change or delete its registration"
	case a.Status == agents.Pending && req.Method != http.MethodDelete:
		description = "a pending agent cannot change its registration while it is reviewed"
	case a.Status == agents.Active || a.Status == agents.Pending:
		return nil
	default:
		description = "the agent's status does not allow changes"
	}
	r.log.Warn("registration: change refused", "client_id", a.ClientID, "tenant", a.Tenant,
		"status", string(a.Status), "method", req.Method)
	return &oauthError{status: http.StatusForbidden, code: codeAccessDenied, description: description}
}

// checkAllowed refuses metadata naming a scope or grant type the operator
// does not let agents register.
func (r *Registrar) checkAllowed(m agents.ClientMetadata) *oauthError {
	for _, s := range strings.Fields(m.Scope) {
		if !slices.Contains(r.cfg.Scopes, s) {
			return badRequest(codeInvalidClientMetadata, "scope "+quoteValue(s)+" may not be registered")
		}
	}
	for _, g := range m.GrantTypes {
		if !slices.Contains(r.cfg.GrantTypes, g) {
			return badRequest(codeInvalidClientMetadata, "grant type "+quoteValue(g)+" may not be registered")
		}
	}
	return nil
}

// checkNotWider refuses an update that gives the agent more than its
// registration: a scope or grant type it did not hold, or no scope after
// one while it keeps the token exchange grant, where no registered scope
// means the subject token's whole scope.
func checkNotWider(old, upd agents.ClientMetadata) *oauthError {
	old, upd = old.WithDefaults(), upd.WithDefaults()
	had := strings.Fields(old.Scope)
	wider := false
	for _, s := range strings.Fields(upd.Scope) {
		wider = wider || !slices.Contains(had, s)
	}
	for _, g := range upd.GrantTypes {
		wider = wider || !slices.Contains(old.GrantTypes, g)
	}
	if len(had) > 0 && upd.Scope == "" && slices.Contains(upd.GrantTypes, agents.GrantTokenExchange) {
		wider = true
	}
	if wider {
		return badRequest(codeInvalidClientMetadata, "an update cannot widen scope or grant_types; register again")
	}
	return nil
}

// checkUpdateCredentials applies RFC 7592 section 2.2: the body names the
// client's own client_id, and a client_secret in it must be the current
// one (a client never chooses its secret).
func checkUpdateCredentials(fields map[string]json.RawMessage, c agents.Client) *oauthError {
	var id string
	if err := json.Unmarshal(fields["client_id"], &id); err != nil || id != c.ClientID {
		return badRequest(codeInvalidClientMetadata, "client_id must be present and name this client")
	}
	raw, ok := fields["client_secret"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var secret string
	if err := json.Unmarshal(raw, &secret); err != nil {
		return badRequest(codeInvalidClientMetadata, "client_secret must be a string")
	}
	sum := sha256.Sum256([]byte(secret))
	if c.SecretHash == nil || subtle.ConstantTimeCompare(sum[:], c.SecretHash) != 1 {
		return badRequest(codeInvalidClientMetadata, "client_secret does not match the one issued")
	}
	return nil
}

// clientInformation is the client information response (RFC 7591 section
// 3.2.1, RFC 7592 section 3): the registered metadata with the
// credentials. Unset fields are omitted, never null, "" or {}.
func (r *Registrar) clientInformation(c agents.Client, secret, regToken, statement string) map[string]any {
	body := map[string]any{}
	raw, _ := json.Marshal(c.Metadata)
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(raw, &meta)
	for k, v := range meta {
		body[k] = v
	}
	body["client_id"] = c.ClientID
	body["client_id_issued_at"] = c.IssuedAt.Unix()
	if secret != "" {
		body["client_secret"] = secret
	}
	if c.SecretHash != nil {
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		body["client_secret_expires_at"] = exp
	}
	body["registration_access_token"] = regToken
	body["registration_client_uri"] = r.cfg.Issuer + "/register/" + c.ClientID
	if statement != "" {
		body["software_statement"] = statement
	}
	return body
}

// authorizeRegistration applies the registration policy to a POST
// /register and says whom the agent will belong to.
func (r *Registrar) authorizeRegistration(req *http.Request) (grant, *oauthError) {
	switch r.cfg.Policy {
	case PolicyOpen:
		return grant{tenant: r.cfg.Tenant}, nil
	case PolicyInitialAccessToken:
		token, ok := registrationBearer(req)
		if !ok {
			return grant{}, invalidBearer("an initial access token is required")
		}
		sum := sha256.Sum256([]byte(token))
		match := -1
		for i, t := range r.tokens {
			if subtle.ConstantTimeCompare(sum[:], t.hash) == 1 {
				match = i
			}
		}
		if match < 0 {
			return grant{}, invalidBearer("initial access token not accepted")
		}
		return grant{owner: r.tokens[match].owner, tenant: r.tokens[match].tenant}, nil
	}
	return grant{}, nil // software_statement: checked with the body
}

// applyStatement verifies the body's software statement, if any, and
// lets its metadata claims override the body's (RFC 7591 section 3.1.1).
// Under the software_statement policy a statement is required.
func (r *Registrar) applyStatement(ctx context.Context, fields map[string]json.RawMessage) (*softwareStatement, *oauthError) {
	raw, ok := fields["software_statement"]
	if !ok || string(raw) == "null" {
		if r.cfg.Policy == PolicySoftwareStatement {
			return nil, badRequest(codeInvalidSoftwareStatement, "a software statement is required")
		}
		return nil, nil
	}
	var jwt string
	if err := json.Unmarshal(raw, &jwt); err != nil {
		return nil, badRequest(codeInvalidSoftwareStatement, "software_statement must be a string")
	}
	st, e := r.statements.verify(ctx, jwt)
	if e != nil {
		return nil, e
	}
	for k, v := range st.fields {
		fields[k] = v
	}
	return st, nil
}

// authorizeClient authenticates an RFC 7592 request by its registration
// access token. A wrong token, an unknown client and an agent without a
// registration all give the same 401, in about the same time.
func (r *Registrar) authorizeClient(req *http.Request) (agents.Agent, agents.Client, string, *oauthError) {
	token, ok := registrationBearer(req)
	if !ok {
		return agents.Agent{}, agents.Client{}, "", invalidBearer("a registration access token is required")
	}
	sum := sha256.Sum256([]byte(token))
	a, c, err := r.agents.Client(req.Context(), req.PathValue("client_id"))
	if err != nil && !errors.Is(err, agents.ErrNotFound) && !errors.Is(err, agents.ErrNoClient) {
		r.log.Error("registration: read client", "error", err)
		return agents.Agent{}, agents.Client{}, "", &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "registration could not be read"}
	}
	want := c.RegistrationTokenHash
	if err != nil || len(want) != sha256.Size {
		want = make([]byte, sha256.Size) // compare anyway; never equal to a digest in practice
		err = agents.ErrNotFound
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || err != nil {
		return agents.Agent{}, agents.Client{}, "", invalidBearer("registration access token not accepted")
	}
	return a, c, token, nil
}

// registrationBearer reads an RFC 6750 bearer token from Authorization.
func registrationBearer(req *http.Request) (string, bool) {
	h := req.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	body := strings.TrimRight(token, "=")
	if body == "" || len(token) > 512 {
		return "", false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", false
		}
	}
	return token, true
}

func invalidBearer(description string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: codeInvalidBearerToken, description: description}
}

// readRegistrationBody reads a JSON object body into its members, exactly
// as named (no case folding), refusing repeated members.
func readRegistrationBody(w http.ResponseWriter, req *http.Request) (map[string]json.RawMessage, *oauthError) {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &oauthError{status: http.StatusUnsupportedMediaType, code: codeInvalidRequest, description: "body must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxRegistrationBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return nil, &oauthError{status: http.StatusRequestEntityTooLarge, code: codeInvalidRequest,
			description: "body larger than " + strconv.Itoa(MaxRegistrationBody) + " bytes"}
	}
	if err != nil {
		return nil, badRequest(codeInvalidRequest, "body could not be read")
	}
	return decodeFields(body)
}

// decodeFields splits a JSON object into its members.
func decodeFields(body []byte) (map[string]json.RawMessage, *oauthError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, badRequest(codeInvalidClientMetadata, "body must be a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badRequest(codeInvalidClientMetadata, "body is not valid JSON")
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, badRequest(codeInvalidClientMetadata, "body is not valid JSON")
		}
		if _, dup := fields[name]; dup {
			return nil, badRequest(codeInvalidClientMetadata, "member "+quoteValue(name)+" repeated")
		}
		fields[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, badRequest(codeInvalidClientMetadata, "body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest(codeInvalidClientMetadata, "body holds more than one JSON value")
	}
	return fields, nil
}

// metadataFields maps each client metadata member writ registers to where
// it decodes; other members (extensions) are ignored.
var metadataFields = map[string]func(m *agents.ClientMetadata) any{
	"redirect_uris":              func(m *agents.ClientMetadata) any { return &m.RedirectURIs },
	"token_endpoint_auth_method": func(m *agents.ClientMetadata) any { return &m.TokenEndpointAuthMethod },
	"grant_types":                func(m *agents.ClientMetadata) any { return &m.GrantTypes },
	"response_types":             func(m *agents.ClientMetadata) any { return &m.ResponseTypes },
	"client_name":                func(m *agents.ClientMetadata) any { return &m.ClientName },
	"client_uri":                 func(m *agents.ClientMetadata) any { return &m.ClientURI },
	"logo_uri":                   func(m *agents.ClientMetadata) any { return &m.LogoURI },
	"scope":                      func(m *agents.ClientMetadata) any { return &m.Scope },
	"contacts":                   func(m *agents.ClientMetadata) any { return &m.Contacts },
	"tos_uri":                    func(m *agents.ClientMetadata) any { return &m.TOSURI },
	"policy_uri":                 func(m *agents.ClientMetadata) any { return &m.PolicyURI },
	"jwks_uri":                   func(m *agents.ClientMetadata) any { return &m.JWKSURI },
	"jwks":                       func(m *agents.ClientMetadata) any { return &m.JWKS },
	"software_id":                func(m *agents.ClientMetadata) any { return &m.SoftwareID },
	"software_version":           func(m *agents.ClientMetadata) any { return &m.SoftwareVersion },
	"application_type":           func(m *agents.ClientMetadata) any { return &m.ApplicationType },
}

// metadataFromFields decodes the client metadata members with strict
// types, fills writ's defaults and validates the result. A member that is
// JSON null counts as omitted.
func metadataFromFields(fields map[string]json.RawMessage) (agents.ClientMetadata, *oauthError) {
	var m agents.ClientMetadata
	for name, target := range metadataFields {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if name == "jwks" {
			if len(raw) == 0 || raw[0] != '{' {
				return m, badRequest(codeInvalidClientMetadata, "jwks must be a JSON object")
			}
			m.JWKS = raw // re-encoded from its parsed keys once valid
			continue
		}
		if err := json.Unmarshal(raw, target(&m)); err != nil {
			kind := "a string"
			if _, list := target(&m).(*[]string); list {
				kind = "an array of strings"
			}
			return m, badRequest(codeInvalidClientMetadata, name+" must be "+kind)
		}
	}
	// Empty lists are omitted ones, so stored metadata has one form.
	for _, l := range []*[]string{&m.RedirectURIs, &m.GrantTypes, &m.ResponseTypes, &m.Contacts} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	m = m.WithDefaults()
	if err := m.Validate(); err != nil {
		if me, ok := errors.AsType[*agents.MetadataError](err); ok {
			return m, badRequest(me.Code, me.Description)
		}
		return m, badRequest(codeInvalidClientMetadata, "client metadata refused")
	}
	if len(m.JWKS) > 0 {
		jwks, err := agents.PublicJWKS(m.JWKS)
		if err != nil {
			return m, badRequest(codeInvalidClientMetadata, "jwks refused")
		}
		m.JWKS = jwks
	}
	return m, nil
}

// DecodeClientMetadata reads an RFC 7591 client registration request body
// (a JSON object) into validated client metadata with writ's defaults, as
// POST /register does before any software statement is applied. The error
// is an *agents.MetadataError whose Code is the RFC 7591 error code.
func DecodeClientMetadata(body []byte) (agents.ClientMetadata, error) {
	fields, e := decodeFields(body)
	if e == nil {
		var m agents.ClientMetadata
		if m, e = metadataFromFields(fields); e == nil {
			return m, nil
		}
	}
	return agents.ClientMetadata{}, &agents.MetadataError{Code: e.code, Description: e.description}
}

// record appends the evidence record of a registration change.
func (r *Registrar) record(req *http.Request, a agents.Agent, outcome string, status int, reason string) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	return r.evidence.Append(audit.Record{
		DecisionID: id.String(),
		Time:       r.now(),
		User:       a.Owner,
		Agent:      a.ClientID,
		Tenant:     a.Tenant,
		Request:    audit.Request{Protocol: "http", Method: req.Method, Host: req.Host, Path: req.URL.Path},
		Outcome:    outcome,
		Status:     status,
		Reason:     reason,
	})
}

func (r *Registrar) serverError(w http.ResponseWriter, msg string, err error) {
	r.log.Error(msg, "error", err)
	r.writeError(w, &oauthError{status: http.StatusInternalServerError, code: codeServerError, description: "registration could not be completed"})
}

// writeError writes an error response; 401s carry a Bearer challenge
// (RFC 6750 section 3) and 429s a Retry-After (set by limit).
func (r *Registrar) writeError(w http.ResponseWriter, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+e.code+`"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

// limit takes a token for the request's address and for all addresses.
func (r *Registrar) limit(w http.ResponseWriter, req *http.Request) *oauthError {
	wait, who := r.limiter.take(clientAddress(req.RemoteAddr), r.now())
	if wait <= 0 {
		return nil
	}
	secs := int64(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	r.log.Warn("registration: rate limited", "limit", who, "retry_after_s", secs)
	return &oauthError{status: http.StatusTooManyRequests, code: codeSlowDown,
		description: "too many registration requests " + who + "; retry after " + strconv.FormatInt(secs, 10) + " seconds"}
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func sha256Bytes(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// unquoteRaw is the string value of a JSON string member, or nil.
func unquoteRaw(raw json.RawMessage) []byte {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return []byte(s)
}

// printableText is valid UTF-8 of printable characters and plain spaces.
func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// quoteValue quotes a client-supplied value for an error description, cut
// to a readable length.
func quoteValue(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
