package approvals

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

var inboxTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).ParseFS(templateFS, "templates/*.html"))

// sessionCookie names the inbox's session cookie. Its value is an opaque
// random id; the approver it stands for is kept in memory only.
const sessionCookie = "writ_inbox"

// Inbox serves a small server-rendered page where approvers decide
// requests, without JavaScript:
//
//	GET  /inbox              the login form, or the pending requests the approver may decide
//	POST /inbox/login        form field token: a bearer token, exchanged for a session cookie
//	POST /inbox/logout       end the session
//	POST /inbox/{id}/approve approve (form field csrf)
//	POST /inbox/{id}/deny    deny (form field csrf)
//
// The session cookie is HttpOnly, SameSite=Strict, Secure on TLS (or with
// HandlerOptions.SecureCookies), and holds an opaque id mapped in memory to
// the approver until the token's exp. Every form carries a per-session
// CSRF token, and cross-origin POSTs are refused. Sessions do not survive a
// restart. Mount it at /inbox and /inbox/.
func Inbox(s *Store, auth Authenticator, opts HandlerOptions) http.Handler {
	in := &inbox{s: s, auth: auth, opts: opts.withDefaults(), sessions: map[string]*session{}}
	return http.NewCrossOriginProtection().Handler(in)
}

type inbox struct {
	s    *Store
	auth Authenticator
	opts HandlerOptions

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	approver Approver
	csrf     string
	expires  time.Time
}

type inboxItem struct {
	View
	ExpiresIn time.Duration
}

type inboxPage struct {
	Approver string
	CSRF     string
	Items    []inboxItem
	Notice   string
	Error    string
}

func (in *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

	switch r.URL.Path {
	case "/inbox", "/inbox/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			in.methodNotAllowed(w, http.MethodGet)
			return
		}
		in.index(w, r)
		return
	case "/inbox/login":
		if r.Method != http.MethodPost {
			in.methodNotAllowed(w, http.MethodPost)
			return
		}
		in.login(w, r)
		return
	case "/inbox/logout":
		if r.Method != http.MethodPost {
			in.methodNotAllowed(w, http.MethodPost)
			return
		}
		in.logout(w, r)
		return
	}
	id, action, ok := route(r.URL.Path, "/inbox")
	if !ok || action == "" {
		in.renderLogin(w, http.StatusNotFound, "Not found.")
		return
	}
	if r.Method != http.MethodPost {
		in.methodNotAllowed(w, http.MethodPost)
		return
	}
	in.decide(w, r, id, action == "approve")
}

func (in *inbox) index(w http.ResponseWriter, r *http.Request) {
	sid, sess := in.session(r)
	if sess == nil {
		in.renderLogin(w, http.StatusOK, "")
		return
	}
	notice := ""
	switch r.URL.Query().Get("done") {
	case "approved":
		notice = "Approved."
	case "denied":
		notice = "Denied."
	}
	in.renderInbox(r.Context(), w, sid, sess, http.StatusOK, notice, "")
}

func (in *inbox) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, in.opts.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		in.renderLogin(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		in.renderLogin(w, http.StatusUnauthorized, "A token is required.")
		return
	}
	a, err := in.auth.Authenticate(r.Context(), token)
	if err == nil && a.Subject == "" {
		err = errors.New("token has no subject")
	}
	if err != nil {
		in.opts.Logger.Info("inbox login refused", "error", err)
		in.renderLogin(w, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	now := in.opts.Now()
	expires := now.Add(in.opts.SessionTTL)
	if !a.ExpiresAt.IsZero() && a.ExpiresAt.Before(expires) {
		expires = a.ExpiresAt
	}
	if !expires.After(now) {
		in.renderLogin(w, http.StatusUnauthorized, "That token has expired.")
		return
	}
	sid, err := randomToken()
	csrf, err2 := randomToken()
	if err = errors.Join(err, err2); err == nil {
		err = in.addSession(sid, &session{approver: a, csrf: csrf, expires: expires}, now)
	}
	if err != nil {
		in.opts.Logger.Error("inbox login", "error", err)
		in.renderLogin(w, http.StatusServiceUnavailable, "No session can be opened now; try again later.")
		return
	}
	in.setCookie(w, r, sid, expires, now)
	in.opts.Logger.Info("inbox session opened", "approver", a.Name())
	http.Redirect(w, r, "/inbox", http.StatusSeeOther)
}

func (in *inbox) logout(w http.ResponseWriter, r *http.Request) {
	sid, sess := in.session(r)
	if sess != nil {
		if !in.csrfOK(r, sess) {
			in.renderInbox(r.Context(), w, sid, sess, http.StatusForbidden, "", "The form has expired; reload the page and try again.")
			return
		}
		in.mu.Lock()
		delete(in.sessions, sid)
		in.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/inbox", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil || in.opts.SecureCookies, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/inbox", http.StatusSeeOther)
}

func (in *inbox) decide(w http.ResponseWriter, r *http.Request, id string, approve bool) {
	sid, sess := in.session(r)
	if sess == nil {
		in.renderLogin(w, http.StatusUnauthorized, "Your session has ended; sign in again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, in.opts.MaxBodyBytes)
	if err := r.ParseForm(); err != nil || !in.csrfOK(r, sess) {
		in.renderInbox(r.Context(), w, sid, sess, http.StatusForbidden, "", "The form has expired; reload the page and try again.")
		return
	}
	req, err := Decide(r.Context(), in.s, sess.approver, id, approve)
	if err != nil {
		status, _, desc := errorStatus(err)
		if status == http.StatusInternalServerError {
			in.opts.Logger.Error("inbox decision", "approval_id", id, "error", err)
		}
		in.renderInbox(r.Context(), w, sid, sess, status, "", desc+".")
		return
	}
	in.opts.Logger.Info("approval decided", "approval_id", id, "status", string(req.Status), "approver", sess.approver.Name())
	done := "denied"
	if approve {
		done = "approved"
	}
	http.Redirect(w, r, "/inbox?done="+done, http.StatusSeeOther)
}

// session returns the live session the request's cookie names, if any.
func (in *inbox) session(r *http.Request) (string, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	sess, ok := in.sessions[c.Value]
	if !ok {
		return "", nil
	}
	if !sess.expires.After(in.opts.Now()) {
		delete(in.sessions, c.Value)
		return "", nil
	}
	return c.Value, sess
}

func (in *inbox) addSession(sid string, sess *session, now time.Time) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.sessions) >= in.opts.MaxSessions {
		for k, s := range in.sessions {
			if !s.expires.After(now) {
				delete(in.sessions, k)
			}
		}
	}
	if len(in.sessions) >= in.opts.MaxSessions {
		return errors.New("approvals: too many inbox sessions")
	}
	in.sessions[sid] = sess
	return nil
}

func (in *inbox) csrfOK(r *http.Request, sess *session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

func (in *inbox) setCookie(w http.ResponseWriter, r *http.Request, sid string, expires, now time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sid, Path: "/inbox",
		Expires: expires, MaxAge: max(1, int(expires.Sub(now).Seconds())),
		HttpOnly: true, Secure: r.TLS != nil || in.opts.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

func (in *inbox) renderInbox(ctx context.Context, w http.ResponseWriter, sid string, sess *session, status int, notice, errMsg string) {
	page := inboxPage{Approver: sess.approver.Name(), CSRF: sess.csrf, Notice: notice, Error: errMsg}
	reqs, err := pendingFor(ctx, in.s, sess.approver, in.opts.ListLimit)
	if err != nil {
		in.opts.Logger.Error("inbox list", "error", err)
		status, page.Error = http.StatusInternalServerError, "The approval requests could not be read."
	}
	now := in.opts.Now()
	for _, r := range reqs {
		page.Items = append(page.Items, inboxItem{View: ViewOf(r), ExpiresIn: r.ExpiresAt.Sub(now).Truncate(time.Second)})
	}
	in.render(w, status, "inbox.html", page)
}

func (in *inbox) renderLogin(w http.ResponseWriter, status int, errMsg string) {
	in.render(w, status, "login.html", inboxPage{Error: errMsg})
}

func (in *inbox) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	in.renderLogin(w, http.StatusMethodNotAllowed, "Method not allowed.")
}

func (in *inbox) render(w http.ResponseWriter, status int, name string, page inboxPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := inboxTemplates.ExecuteTemplate(w, name, page); err != nil {
		in.opts.Logger.Error("inbox render", "template", name, "error", err)
	}
}

// randomToken returns 256 random bits, base64url.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
