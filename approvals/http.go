package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Authenticator verifies an approver's bearer token. It is how the HTTP API
// and the inbox learn who is deciding; writ adapts its token verifier to
// it.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (Approver, error)
}

// Approver is an authenticated person who may decide approval requests.
type Approver struct {
	// Subject is the token's sub.
	Subject string
	// Groups and Roles come from the token's groups and roles claims.
	Groups []string
	Roles  []string
	// ExpiresAt is the token's exp; an inbox session ends then. Zero means
	// HandlerOptions.SessionTTL.
	ExpiresAt time.Time
}

// Name is how the approver is recorded on a decision: user:SUBJECT.
func (a Approver) Name() string { return "user:" + a.Subject }

// MayDecide reports whether a may approve or deny r: a is not the call's
// agent, and is either the call's user (deciding for their own agent) or
// named in r.Approvers as user:SUBJECT, group:NAME for one of a.Groups, or
// role:NAME for one of a.Roles.
func (a Approver) MayDecide(r Request) bool {
	if a.Subject == "" || a.Subject == r.Call.Agent || a.Name() == r.Call.Agent {
		return false
	}
	if r.Call.User != "" && a.Subject == r.Call.User {
		return true
	}
	for _, who := range r.Approvers {
		kind, name, ok := strings.Cut(who, ":")
		if !ok || name == "" {
			continue
		}
		switch kind {
		case "user":
			if name == a.Subject {
				return true
			}
		case "group":
			if slices.Contains(a.Groups, name) {
				return true
			}
		case "role":
			if slices.Contains(a.Roles, name) {
				return true
			}
		}
	}
	return false
}

// Decide approves (approve true) or denies request id as a, after checking
// that a may decide it: ErrNotFound, ErrNotAllowed, ErrSelfApproval or
// ErrNotPending otherwise. The decision is recorded under a.Name().
func Decide(ctx context.Context, s *Store, a Approver, id string, approve bool) (Request, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	if a.Subject != "" && (a.Subject == r.Call.Agent || a.Name() == r.Call.Agent) {
		return Request{}, ErrSelfApproval
	}
	if !a.MayDecide(r) {
		return Request{}, ErrNotAllowed
	}
	if approve {
		err = s.Approve(ctx, id, a.Name())
	} else {
		err = s.Deny(ctx, id, a.Name())
	}
	if err != nil {
		return Request{}, err
	}
	return s.Get(ctx, id)
}

// HandlerOptions configure Handler and Inbox.
type HandlerOptions struct {
	// Logger receives operational logs; nothing is logged when nil.
	Logger *slog.Logger
	// Now is the clock for inbox sessions; time.Now when nil.
	Now func() time.Time
	// MaxBodyBytes caps a request body; 16 KiB when zero.
	MaxBodyBytes int64
	// ListLimit caps how many pending requests are read to build a list;
	// 1000 when zero.
	ListLimit int
	// SessionTTL caps an inbox session's life (it also ends at the token's
	// exp); 8 hours when zero.
	SessionTTL time.Duration
	// SecureCookies marks the inbox cookie Secure even on plain HTTP, for
	// writ behind a proxy that terminates TLS. It is Secure on TLS anyway.
	SecureCookies bool
	// MaxSessions caps live inbox sessions; 10000 when zero.
	MaxSessions int
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 10
	}
	if o.ListLimit <= 0 {
		o.ListLimit = 1000
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 10000
	}
	return o
}

// View is the JSON form of a Request in the HTTP API, with the arguments
// exactly as they will be checked (RFC 8785 canonical JSON) and their digest.
type View struct {
	ID              string     `json:"id"`
	Status          Status     `json:"status"`
	BindingMessage  string     `json:"binding_message"`
	User            string     `json:"user"`
	Agent           string     `json:"agent"`
	Tenant          string     `json:"tenant"`
	Resource        string     `json:"resource"`
	Tool            string     `json:"tool"`
	ArgumentsSHA256 string     `json:"arguments_sha256"`
	Arguments       string     `json:"arguments,omitempty"`
	Approvers       []string   `json:"approvers"`
	Approver        string     `json:"approver,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	DecidedAt       *time.Time `json:"decided_at,omitempty"`
	ExpiresAt       time.Time  `json:"expires_at"`
	Uses            int        `json:"uses"`
	UsesLeft        int        `json:"uses_left"`
	ConsumedBy      []string   `json:"consumed_by,omitempty"`
}

// ViewOf returns r's JSON form.
func ViewOf(r Request) View {
	v := View{
		ID: r.ID, Status: r.Status, BindingMessage: r.BindingMessage, User: r.Call.User, Agent: r.Call.Agent,
		Tenant: r.Call.Tenant, Resource: r.Call.Resource, Tool: r.Call.Action, ArgumentsSHA256: r.Call.ArgumentsSHA256, Arguments: r.Call.Arguments,
		Approvers: r.Approvers, Approver: r.Approver, CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		Uses: r.Uses, UsesLeft: r.UsesLeft, ConsumedBy: r.ConsumedBy,
	}
	if v.Approvers == nil {
		v.Approvers = []string{}
	}
	if !r.DecidedAt.IsZero() {
		d := r.DecidedAt.UTC()
		v.DecidedAt = &d
	}
	return v
}

// Handler serves the approvals API:
//
//	GET  /approvals              pending requests the approver may decide
//	GET  /approvals/{id}         one request
//	POST /approvals/{id}/approve approve it
//	POST /approvals/{id}/deny    deny it
//
// Every call needs Authorization: Bearer with a token auth accepts; cookies
// are never read. A POST carries no body or a JSON one (Content-Type:
// application/json). Answers are JSON; errors are {error, error_description}
// with 401 (and WWW-Authenticate: Bearer), 403, 404, 409, 405, 413 or 415.
// Mount it at /approvals and /approvals/.
func Handler(s *Store, auth Authenticator, opts HandlerOptions) http.Handler {
	return &api{s: s, auth: auth, opts: opts.withDefaults()}
}

type api struct {
	s    *Store
	auth Authenticator
	opts HandlerOptions
}

type apiError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (h *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, action, ok := route(r.URL.Path, "/approvals")
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such resource")
		return
	}
	want := http.MethodGet
	if action != "" {
		want = http.MethodPost
	}
	if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", want)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	a, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	switch {
	case id == "":
		h.list(ctx, w, a)
	case action == "":
		req, err := h.s.Get(ctx, id)
		if err != nil {
			h.fail(w, err)
			return
		}
		if !a.MayDecide(req) {
			h.fail(w, ErrNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(req))
	default:
		if !h.readBody(w, r) {
			return
		}
		req, err := Decide(ctx, h.s, a, id, action == "approve")
		if err != nil {
			h.fail(w, err)
			return
		}
		h.opts.Logger.Info("approval decided", "approval_id", id, "status", string(req.Status), "approver", a.Name())
		writeJSON(w, http.StatusOK, ViewOf(req))
	}
}

func (h *api) list(ctx context.Context, w http.ResponseWriter, a Approver) {
	reqs, err := pendingFor(ctx, h.s, a, h.opts.ListLimit)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := struct {
		Approvals []View `json:"approvals"`
	}{Approvals: []View{}}
	for _, r := range reqs {
		out.Approvals = append(out.Approvals, ViewOf(r))
	}
	writeJSON(w, http.StatusOK, out)
}

// pendingFor returns the pending requests a may decide, newest first.
func pendingFor(ctx context.Context, s *Store, a Approver, limit int) ([]Request, error) {
	all, err := s.List(ctx, Filter{Status: Pending, Limit: limit})
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, r := range all {
		if a.MayDecide(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (h *api) authenticate(w http.ResponseWriter, r *http.Request) (Approver, bool) {
	token, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
		writeError(w, http.StatusUnauthorized, "invalid_request", "a bearer token is required")
		return Approver{}, false
	}
	a, err := h.auth.Authenticate(r.Context(), token)
	if err == nil && a.Subject == "" {
		err = errors.New("token has no subject")
	}
	if err != nil {
		h.opts.Logger.Info("approver not authenticated", "error", err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ", error="invalid_token", error_description="the bearer token is not valid"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "the bearer token is not valid")
		return Approver{}, false
	}
	return a, true
}

// readBody accepts no body or a JSON object no larger than the cap.
func (h *api) readBody(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "cannot read request body")
		return false
	case len(body) == 0:
		return true
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "a request body must be application/json")
		return false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the request body must be a JSON object")
		return false
	}
	return true
}

func (h *api) fail(w http.ResponseWriter, err error) {
	status, code, desc := errorStatus(err)
	if status == http.StatusInternalServerError {
		h.opts.Logger.Error("approvals API", "error", err)
	}
	writeError(w, status, code, desc)
}

// errorStatus maps a Store or Decide error to an HTTP status, an error code
// and a description safe to show.
func errorStatus(err error) (int, string, string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found", "no such approval request"
	case errors.Is(err, ErrSelfApproval):
		return http.StatusForbidden, "access_denied", "an agent cannot decide its own request"
	case errors.Is(err, ErrNotAllowed):
		return http.StatusForbidden, "access_denied", "you may not decide this approval request"
	case errors.Is(err, ErrNotPending):
		return http.StatusConflict, "not_pending", "the approval request is no longer pending"
	default:
		return http.StatusInternalServerError, "server_error", "internal error"
	}
}

// route splits /prefix, /prefix/{id} and /prefix/{id}/approve|deny.
func route(path, prefix string) (id, action string, ok bool) {
	if path == prefix {
		return "", "", true
	}
	rest, found := strings.CutPrefix(path, prefix+"/")
	if !found {
		return "", "", false
	}
	id, action, _ = strings.Cut(rest, "/")
	if !validID(id) {
		return "", "", false
	}
	switch action {
	case "", "approve", "deny":
		return id, action, true
	}
	return "", "", false
}

// validID accepts what an auth_req_id can be (base64url), bounded.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // an error here means the client went away
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, apiError{Error: code, ErrorDescription: desc})
}
