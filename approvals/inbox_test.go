package approvals_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/approvals"
)

// browser drives the inbox handler like a browser with one cookie.
type browser struct {
	t      *testing.T
	h      http.Handler
	cookie *http.Cookie
}

func (b *browser) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.Name == "writ_inbox" {
			b.cookie = c
		}
	}
	raw, _ := io.ReadAll(res.Body)
	return res, string(raw)
}

func (b *browser) login(token string) {
	b.t.Helper()
	res, body := b.do("POST", "/inbox/login", url.Values{"token": {token}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/inbox" {
		b.t.Fatalf("login: %d %s", res.StatusCode, body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

func inboxFixture(t *testing.T, binding string) (*fixture, approvals.Result, http.Handler) {
	t.Helper()
	f := newFixture(t, approvals.Options{})
	req := once
	req.BindingMessage = binding
	res := f.gate(t, refund(), req)
	auth := tokens{}
	for k, v := range approverTokens {
		v.ExpiresAt = f.clock.Now().Add(time.Hour)
		auth[k] = v
	}
	return f, res, approvals.Inbox(f.s, auth, approvals.HandlerOptions{Now: f.clock.Now})
}

func TestInboxShowsEscapedRequest(t *testing.T) {
	f, res, h := inboxFixture(t, `Refund <script>alert("x")</script> $120 to ACME?`)
	b := &browser{t: t, h: h}

	resp, page := b.do("GET", "/inbox", nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `name="token"`) || strings.Contains(page, "Refund") {
		t.Fatalf("anonymous inbox: %d\n%s", resp.StatusCode, page)
	}
	b.login("tok-alice")
	c := b.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/inbox" || c.Secure || len(c.Value) < 40 {
		t.Errorf("session cookie %+v", c)
	}
	if c.Value == "tok-alice" || strings.Contains(c.Value, "alice") {
		t.Errorf("cookie carries the token or subject: %q", c.Value)
	}
	if want := f.clock.Now().Add(time.Hour); !c.Expires.Equal(want) || c.MaxAge != 3600 {
		t.Errorf("cookie expires %v (max-age %d), want %v", c.Expires, c.MaxAge, want)
	}

	resp, page = b.do("GET", "/inbox", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("inbox: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`Refund &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; $120 to ACME?`,
		"user:alice", "agent-3", "user-7", "tenant-a", "mcp://payments", "<dd>refund</dd>", digestA, res.ID,
		"only a call with exactly these arguments passes",
		`<code>{&#34;amount&#34;:120,&#34;memo&#34;:&#34;&lt;b&gt;ACME&lt;/b&gt;&#34;}</code>`,
		`action="/inbox/` + res.ID + `/approve"`, `action="/inbox/` + res.ID + `/deny"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("binding message HTML was not escaped")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestInboxCookieSecureOnTLS(t *testing.T) {
	_, _, h := inboxFixture(t, "x")
	req := httptest.NewRequest("POST", "https://writ.example/inbox/login", strings.NewReader("token=tok-alice"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("cookies on TLS: %+v", cs)
	}
}

func TestInboxApprove(t *testing.T) {
	f, res, h := inboxFixture(t, "Refund $120 to ACME?")
	b := &browser{t: t, h: h}
	b.login("tok-alice")
	_, page := b.do("GET", "/inbox", nil)
	csrf := csrfOf(t, page)
	approve := "/inbox/" + res.ID + "/approve"

	for name, form := range map[string]url.Values{
		"no CSRF token":    {},
		"wrong CSRF token": {"csrf": {csrf + "x"}},
	} {
		resp, page := b.do("POST", approve, form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "The form has expired") {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	// A cross-site POST is refused before it is read, even with the token.
	resp, _ := b.do("POST", approve, url.Values{"csrf": {csrf}}, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", resp.StatusCode)
	}
	if r, _ := f.s.Get(context.Background(), res.ID); r.Status != approvals.Pending {
		t.Fatalf("refused POSTs decided the request: %s", r.Status)
	}

	resp, _ = b.do("POST", approve, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox?done=approved" {
		t.Fatalf("approve: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	r, err := f.s.Get(context.Background(), res.ID)
	if err != nil || r.Status != approvals.Approved || r.Approver != "user:alice" {
		t.Fatalf("stored: %s %q %v", r.Status, r.Approver, err)
	}
	resp, page = b.do("GET", "/inbox?done=approved", nil)
	if !strings.Contains(page, "Approved.") || strings.Contains(page, res.ID) {
		t.Errorf("after approval: %d\n%s", resp.StatusCode, page)
	}
	// Deciding again is a conflict, shown on the page.
	resp, page = b.do("POST", "/inbox/"+res.ID+"/deny", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "no longer pending") {
		t.Errorf("second decision: %d", resp.StatusCode)
	}
}

func TestInboxRefusals(t *testing.T) {
	f, res, h := inboxFixture(t, "Refund $120 to ACME?")

	agent := &browser{t: t, h: h}
	agent.login("tok-agent")
	_, page := agent.do("GET", "/inbox", nil)
	if strings.Contains(page, res.ID) {
		t.Error("the agent sees its own request")
	}
	resp, _ := agent.do("POST", "/inbox/"+res.ID+"/approve", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("agent approving itself: %d", resp.StatusCode)
	}

	bob := &browser{t: t, h: h}
	bob.login("tok-bob")
	_, page = bob.do("GET", "/inbox", nil)
	resp, _ = bob.do("POST", "/inbox/"+res.ID+"/deny", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("non-approver denying: %d", resp.StatusCode)
	}

	anon := &browser{t: t, h: h}
	resp, _ = anon.do("POST", "/inbox/"+res.ID+"/approve", url.Values{"csrf": {"x"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session: %d", resp.StatusCode)
	}
	resp, page = anon.do("POST", "/inbox/login", url.Values{"token": {"forged"}})
	if resp.StatusCode != http.StatusUnauthorized || anon.cookie != nil || !strings.Contains(page, "not valid") {
		t.Errorf("bad token login: %d cookie %v", resp.StatusCode, anon.cookie)
	}
	forged := &browser{t: t, h: h, cookie: &http.Cookie{Name: "writ_inbox", Value: "made-up"}}
	_, page = forged.do("GET", "/inbox", nil)
	if !strings.Contains(page, `name="token"`) {
		t.Error("a made-up session id was accepted")
	}
	if r, _ := f.s.Get(context.Background(), res.ID); r.Status != approvals.Pending {
		t.Fatalf("refusals decided the request: %s", r.Status)
	}
}

func TestInboxSessionEnds(t *testing.T) {
	f, res, h := inboxFixture(t, "Refund $120 to ACME?")
	b := &browser{t: t, h: h}
	b.login("tok-alice")
	_, page := b.do("GET", "/inbox", nil)
	csrf := csrfOf(t, page)

	f.clock.Advance(time.Hour) // the token's exp
	_, page = b.do("GET", "/inbox", nil)
	if !strings.Contains(page, `name="token"`) || strings.Contains(page, res.ID) {
		t.Error("session outlived the token")
	}

	f.clock.Advance(-time.Hour)
	b.login("tok-alice")
	_, page = b.do("GET", "/inbox", nil)
	if csrfOf(t, page) == csrf {
		t.Error("a new session reused the CSRF token")
	}
	resp, _ := b.do("POST", "/inbox/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	_, page = b.do("GET", "/inbox", nil)
	if !strings.Contains(page, `name="token"`) {
		t.Error("session survived logout")
	}
}
