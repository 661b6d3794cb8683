package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/uuid"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/tokens"
)

// Verifier verifies an inbound bearer token from a trusted issuer.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*tokens.Identity, error)
}

// Decider evaluates the policy; it returns the decision and the policy
// revision that made it.
type Decider interface {
	Decide(ctx context.Context, in *policies.Input) (policies.Decision, string, error)
}

// Minter mints writ tokens.
type Minter interface {
	Mint(ctx context.Context, r tokens.MintRequest) (tokens.Minted, error)
}

// Recorder queues evidence records for the hash-chained log. Append must not
// block on I/O; an error means the record cannot be kept.
type Recorder interface {
	Append(rec audit.Record) error
}

// Deps are the parts the Check pipeline drives.
type Deps struct {
	Verifier Verifier
	Engine   Decider
	Minter   Minter
	Evidence Recorder
	// Approvals gates calls that need a human's approval; nil means no
	// approval service, and such calls are refused.
	Approvals Approvals
	// Credentials fetches the vaulted credentials decisions name; nil
	// means none are configured, and a decision naming one is a 503.
	Credentials Credentials
	// Agents is the agent registry, the kill switch: a suspended or pending
	// agent is refused before any policy runs or token is minted. Nil means
	// no registry, and every agent is decided by policy alone.
	Agents Agents
	// DenyUnknownAgents refuses (403) an agent Agents does not hold. By
	// default such an agent is decided by policy alone: registration is
	// inventory, not authority. From agents.unknown: deny.
	DenyUnknownAgents bool
	// OwnIssuer is writ's own issuer. Its tokens come from writ's token
	// endpoint and name agents writ registered, so a chain naming an agent
	// the registry no longer holds (deleted) is refused whatever
	// DenyUnknownAgents says.
	OwnIssuer string
	// Revocations holds the writ tokens revoked through RFC 7009: a token
	// whose jti it names is refused (401 invalid_token) even when it
	// verifies. Nil means no revocations are consulted.
	Revocations Revocations
	// Metrics may be nil (no metrics).
	Metrics *Metrics
}

// Agents answers an agent's registry status on the Check path. Status and
// Touch must be cheap and must not block on I/O: they run on every Check.
type Agents interface {
	// Status is the agent's status ("active", "pending", "suspended");
	// known is false for an agent the registry does not hold.
	Status(ctx context.Context, agent string) (status string, known bool)
	// Generation changes whenever statuses may have changed; a cache of
	// answers derived from them is stale once it moves.
	Generation() uint64
	// Epoch counts the agent's suspensions: a token minted for it under
	// one epoch is never reused under another.
	Epoch(ctx context.Context, agent string) int64
	// Touch notes that the agent was seen.
	Touch(ctx context.Context, agent string)
}

// Revocations answers whether a token was revoked. Revoked runs on every
// Check with a bearer token: it must be cheap and must not block on I/O.
type Revocations interface {
	Revoked(jti string) bool
}

// Server answers Envoy's Check calls, over gRPC and over HTTP.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	deps        Deps
	cfg         Config
	credentials *credentialCache
	limits      Limits
	log         *slog.Logger
}

// New returns a Server. Every dependency is required.
func New(deps Deps, cfg Config) (*Server, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Verifier == nil:
		return nil, fmt.Errorf("%w: no verifier", ErrConfig)
	case deps.Engine == nil:
		return nil, fmt.Errorf("%w: no policy engine", ErrConfig)
	case deps.Minter == nil:
		return nil, fmt.Errorf("%w: no minter", ErrConfig)
	case deps.Evidence == nil:
		return nil, fmt.Errorf("%w: no evidence log", ErrConfig)
	}
	credentials, err := newCredentialCache(cfg.CredentialCacheTTL)
	if err != nil {
		return nil, fmt.Errorf("%w: credential cache: %v", ErrConfig, err)
	}
	return &Server{
		deps:        deps,
		cfg:         cfg,
		credentials: credentials,
		limits:      Limits{MaxHeaderBytes: cfg.MaxHeaderBytes, MaxBodyBytes: cfg.MaxBodyBytes},
		log:         cfg.Logger,
	}, nil
}

// Close releases the credential cache. No Check may run after it.
func (s *Server) Close() {
	s.credentials.cache.Close()
}

// Check implements envoy.service.auth.v3.Authorization. It never returns an
// error: every fault is a denial in the CheckResponse, so Envoy's
// failure_mode_allow never comes into play.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, req, "grpc"), nil
}

// check runs the pipeline, records the evidence and builds the answer.
func (s *Server) check(ctx context.Context, req *authv3.CheckRequest, protocol string) *authv3.CheckResponse {
	start := time.Now()
	rec := audit.Record{
		DecisionID: newDecisionID(),
		Time:       start,
		Request:    audit.Request{Protocol: protocol},
	}
	v := s.evaluateRecovered(ctx, req, &rec)
	rec.Outcome, rec.Status, rec.Reason = v.outcome, v.status, v.reason
	rec.LatencyMicros = time.Since(start).Microseconds()
	if err := s.deps.Evidence.Append(rec); err != nil {
		// No answer leaves writ without its evidence: an allow that cannot
		// be recorded becomes a denial.
		s.log.Error("evidence record not kept; denying", "decision_id", rec.DecisionID, "error", err)
		v = fault(503, causeEvidence, "the evidence log is unavailable; writ does not answer without evidence")
		rec.Outcome, rec.Status, rec.Reason = v.outcome, v.status, v.reason
	}
	s.observe(ctx, &rec, v, start)
	return respond(rec.DecisionID, v)
}

// evaluateRecovered is evaluate, with a panic in any phase turned into a
// 500: a crash would leave the answer to Envoy's failure_mode_allow, and
// the call without evidence. Only the panic's type and where it happened
// are logged: its value may carry request data.
func (s *Server) evaluateRecovered(ctx context.Context, req *authv3.CheckRequest, rec *audit.Record) (v verdict) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic on the Check path; denying", "decision_id", rec.DecisionID,
				"panic_type", fmt.Sprintf("%T", p), "panic_at", panicSite())
			v = fault(500, causeInternal, "internal error")
		}
	}()
	return s.evaluate(ctx, req, rec)
}

// panicSite names the function and line that panicked, from within the
// deferred function that recovered: the first frame outside the runtime.
func panicSite() string {
	var pcs [16]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs[:])])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") {
			return f.Function + ":" + strconv.Itoa(f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

// evaluate walks the phases: describe the headers, authenticate, describe
// the body, decide, issue. Each phase either hands on or ends the walk with
// a verdict. The body is read only once the caller's credential has
// verified (or there is none): an invalid token is answered before writ
// parses anything it sent in the body.
func (s *Server) evaluate(ctx context.Context, req *authv3.CheckRequest, rec *audit.Record) verdict {
	d, err := describeHeaders(req, s.limits)
	if err != nil {
		return refuse(err)
	}
	recordRequest(rec, d)

	identity, v, ok := s.authenticate(ctx, d)
	if !ok {
		return v
	}
	d.input.Identity = identity
	recordIdentity(rec, d, identity)
	epoch, v, ok := s.admitAgent(ctx, identity)
	if !ok {
		return v
	}
	d.agentEpoch = epoch

	if err := d.describeBody(s.limits); err != nil {
		return refuse(err)
	}
	recordCall(rec, d)

	dec, v, ok := s.decide(ctx, d, rec)
	if !ok {
		return v
	}
	if dec.Approval != nil && dec.Approval.Required {
		if dec, v, ok = s.approve(ctx, d, identity, dec, rec); !ok {
			return v
		}
	}

	cred, v, ok := s.inject(ctx, identity, dec, d, rec)
	if !ok {
		return v
	}
	minted, v, ok := s.issue(ctx, d, identity, dec, rec, cred.header)
	if !ok {
		return v
	}
	return allow(d, dec, minted, cred)
}

// authenticate verifies the caller's credential. A bearer token that does
// not verify ends the walk with 401; no credential at all hands on with a
// nil identity, and the policy decides.
func (s *Server) authenticate(ctx context.Context, d *description) (*policies.Identity, verdict, bool) {
	var identity *policies.Identity
	switch {
	case d.bearer != "":
		verified, err := s.deps.Verifier.Verify(ctx, d.bearer)
		if err != nil {
			return nil, invalidToken(s.resourceMetadata(d), tokenErrorDescription(err)), false
		}
		// After verification, cached or not: a revoked token verifies
		// until it expires.
		if s.deps.Revocations != nil {
			if jti, _ := verified.Claims["jti"].(string); jti != "" && s.deps.Revocations.Revoked(jti) {
				return nil, invalidToken(s.resourceMetadata(d), "the token has been revoked"), false
			}
		}
		identity = &policies.Identity{
			User:   verified.User,
			Agent:  verified.Agent,
			Tenant: verified.Tenant,
			Actors: verified.Actors,
			Issuer: verified.Issuer,
			Scopes: verified.Scopes,
			Claims: verified.Claims,
			Dev:    verified.Dev,
		}
	case d.hasAuthorizationHeader:
		return nil, invalidRequest(s.resourceMetadata(d), "the Authorization header must use the Bearer scheme"), false
	}
	if d.spiffeID != "" {
		if identity == nil {
			identity = &policies.Identity{Agent: d.spiffeID}
		}
		identity.SPIFFEID = d.spiffeID
	}
	return identity, verdict{}, true
}

// admitAgent is the kill switch: it refuses a call whose agent, or any
// agent in its delegation chain, is suspended or awaiting review, and one
// whose agent is unregistered when unknown agents are denied. It runs before
// the body is read, the policy decides or a token is minted, so a suspended
// agent never receives a token again, cached or new, while suspended.
func (s *Server) admitAgent(ctx context.Context, identity *policies.Identity) (int64, verdict, bool) {
	if s.deps.Agents == nil || identity == nil {
		return 0, verdict{}, true
	}
	names := identity.Actors
	if identity.Agent != "" && !slices.Contains(names, identity.Agent) {
		names = append([]string{identity.Agent}, names...)
	}
	var epoch int64
	for _, name := range names {
		status, known := s.deps.Agents.Status(ctx, name)
		switch {
		case !known && (s.deps.DenyUnknownAgents || (s.deps.OwnIssuer != "" && identity.Issuer == s.deps.OwnIssuer)):
			return 0, agentDenial("the agent is not registered"), false
		case !known:
		case status == "suspended":
			return 0, agentDenial("the agent is suspended"), false
		case status == "pending":
			return 0, agentDenial("the agent is awaiting review"), false
		case status != "active":
			return 0, agentDenial("the agent is not active"), false
		}
		// Epochs only grow, so their sum over the chain moves whenever
		// any agent in it has been suspended since.
		epoch += s.deps.Agents.Epoch(ctx, name)
	}
	if identity.Agent != "" {
		s.deps.Agents.Touch(ctx, identity.Agent)
	}
	return epoch, verdict{}, true
}

// causeAgentStatus labels refusals for an agent's registry status.
const causeAgentStatus = "agent_status"

// agentDenial refuses a call because of its agent's registry status.
func agentDenial(reason string) verdict {
	return verdict{outcome: "deny", cause: causeAgentStatus, status: 403, reason: reason, errorCode: "access_denied"}
}

// decide asks the policy. An allow, or a decision that needs approval,
// hands on.
func (s *Server) decide(ctx context.Context, d *description, rec *audit.Record) (policies.Decision, verdict, bool) {
	dec, revision, err := s.deps.Engine.Decide(ctx, d.input)
	rec.PolicyRevision = revision
	if err != nil {
		s.log.Error("policy evaluation failed", "decision_id", rec.DecisionID, "policy_revision", revision, "error", err)
		return dec, fault(500, causePolicy, "policy evaluation failed"), false
	}
	if dec.Approval != nil && dec.Approval.Required {
		return dec, verdict{}, true // the approval phase decides
	}
	if !dec.Allow {
		return dec, policyDenial(d.input.Identity, dec, s.resourceMetadata(d)), false
	}
	return dec, verdict{}, true
}

// issue mints the writ token for an allowed call. An anonymous allow (no
// verified identity) gets no token, and neither does a call whose injected
// credential goes in the header the token would (an access token and a
// third party's Authorization): the upstream gets the credential it needs.
func (s *Server) issue(ctx context.Context, d *description, identity *policies.Identity, dec policies.Decision, rec *audit.Record, credentialHeader string) (tokens.Minted, verdict, bool) {
	if identity == nil {
		return tokens.Minted{}, verdict{}, true
	}
	profileName := dec.Profile
	if profileName == "" {
		profileName = d.profile
	}
	profile := s.cfg.DefaultProfile
	if profileName != "" {
		p, err := tokens.ParseProfile(profileName)
		if err != nil {
			return tokens.Minted{}, fault(500, causeMint, fmt.Sprintf("unknown token profile %q", profileName)), false
		}
		profile = p
	}
	if credentialHeader != "" && credentialHeader == tokenHeader(profile) {
		return tokens.Minted{}, verdict{}, true
	}
	audience := s.audience(d, dec)
	if audience == "" {
		return tokens.Minted{}, fault(500, causeMint, "no audience for the writ token: set decision.audience, the route's resource or check.default_audience"), false
	}
	actors := identity.Actors
	if len(actors) == 0 && identity.Agent != "" {
		actors = []string{identity.Agent}
	}
	minted, err := s.deps.Minter.Mint(ctx, tokens.MintRequest{
		Profile:    profile,
		User:       identity.User,
		Agent:      identity.Agent,
		Tenant:     identity.Tenant,
		Actors:     actors,
		Audience:   audience,
		Scopes:     dec.Scopes,
		TTL:        dec.TTL,
		DecisionID: rec.DecisionID,
		ApprovalID: approvalID(rec),
		Dev:        identity.Dev,
		AgentEpoch: d.agentEpoch,
	})
	if err != nil {
		s.log.Error("minting failed", "decision_id", rec.DecisionID, "error", err)
		return tokens.Minted{}, fault(500, causeMint, "could not mint a writ token"), false
	}
	rec.Token = &audit.Token{
		JTI:       minted.JTI,
		Profile:   string(minted.Profile),
		Audience:  minted.Audience,
		Scopes:    minted.Scopes,
		ExpiresAt: minted.ExpiresAt,
		KeyID:     minted.KeyID,
		Reused:    minted.Reused,
	}
	return minted, verdict{}, true
}

// audience picks the minted token's audience: the decision's, the route's
// resource, or the configured default; "" when none is set. Never the
// request's Host: the agent chooses it.
func (s *Server) audience(d *description, dec policies.Decision) string {
	switch {
	case dec.Audience != "":
		return dec.Audience
	case d.input.Resource != nil && d.input.Resource.ID != "":
		return d.input.Resource.ID
	}
	return s.cfg.DefaultAudience
}

// recordRequest records what the request's headers say.
func recordRequest(rec *audit.Record, d *description) {
	path := d.path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i] // query strings can carry secrets; the evidence keeps the path only
	}
	rec.Request.Method = d.method
	rec.Request.Host = d.host
	rec.Request.Path = path
	rec.Request.EnvoyRequestID = d.requestID
	if r := d.input.Resource; r != nil {
		rec.Request.Resource = r.ID
		rec.Tenant = r.Tenant
	}
}

// recordCall records what the body says: the MCP call. The name of a
// resources/* call is a URI, kept without its query and fragment as the
// path is; the decision log line reads the same value.
func recordCall(rec *audit.Record, d *description) {
	rec.Request.ArgumentsDigest = d.argumentsDigest
	if m := d.input.MCP; m != nil {
		rec.Request.MCPMethod = m.Method
		rec.Request.MCPName = m.Name
		if strings.HasPrefix(m.Method, "resources/") {
			if i := strings.IndexAny(m.Name, "?#"); i >= 0 {
				rec.Request.MCPName = m.Name[:i]
			}
		}
	}
}

func recordIdentity(rec *audit.Record, d *description, id *policies.Identity) {
	switch {
	case id == nil:
		rec.InboundCredential = "none"
		return
	case d.bearer != "":
		rec.InboundCredential = "jwt"
	default:
		rec.InboundCredential = "spiffe"
	}
	rec.User, rec.Agent, rec.Actors = id.User, id.Agent, id.Actors
	rec.Issuer, rec.SPIFFEID, rec.Dev = id.Issuer, id.SPIFFEID, id.Dev
	if id.Tenant != "" {
		rec.Tenant = id.Tenant
	}
}

// tokenErrorDescription turns a verification failure into the
// error_description of the 401 challenge. It never includes the token.
func tokenErrorDescription(err error) string {
	for _, e := range []struct {
		err  error
		desc string
	}{
		{tokens.ErrExpired, "the token has expired"},
		{tokens.ErrNotYetValid, "the token is not valid yet"},
		{tokens.ErrAudience, "the token's audience is not accepted"},
		{tokens.ErrIssuer, "the token's issuer is not trusted"},
		{tokens.ErrUnknownIssuer, "the token's issuer is not trusted"},
		{tokens.ErrAlgorithm, "the token's signing algorithm is not allowed"},
		{tokens.ErrUnknownKey, "the token's signing key is unknown"},
		{tokens.ErrSignature, "the token's signature is invalid"},
		{tokens.ErrType, "the token's type is not accepted"},
		{tokens.ErrActorChain, "the token's delegation (act) chain is invalid"},
		{tokens.ErrMissingSubject, "the token has no subject"},
		{tokens.ErrMalformed, "the token is malformed"},
	} {
		if errors.Is(err, e.err) {
			return e.desc
		}
	}
	return "the token could not be verified"
}

// approvalID is the approval this call consumed, for the writ token.
func approvalID(rec *audit.Record) string {
	if rec.Approval != nil && rec.Approval.Outcome == "approved" {
		return rec.Approval.ID
	}
	return ""
}

func newDecisionID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
