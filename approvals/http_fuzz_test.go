package approvals_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writ-dev/writ/approvals"
)

// FuzzHandler sends arbitrary paths, content types and bodies to the API as
// an approver who may decide nothing: whatever arrives, the answer is a
// JSON error and the request stays pending.
func FuzzHandler(f *testing.F) {
	for _, seed := range [][3]string{
		{"/approvals/ID/approve", "application/json", "{}"},
		{"/approvals/ID/deny", "", ""},
		{"/approvals/ID", "text/plain", "x"},
		{"/approvals/ID/approve/extra", "application/json; charset=utf-8", `{"a":1}`},
		{"/approvals//approve", "application/json", "null"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	// One store for every input (a subtest's name, with its '#', cannot be
	// part of a database path).
	fix := &fixture{dir: f.TempDir(), clock: newClock(), events: &events{ch: make(chan approvals.Event, 1024)}}
	fix.openTB(f, approvals.Options{})
	res, err := fix.s.Gate(f.Context(), refund(), once)
	if err != nil {
		f.Fatal(err)
	}
	h := approvals.Handler(fix.s, approverTokens, approvals.HandlerOptions{})
	f.Fuzz(func(t *testing.T, path, ctype, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		path = strings.ReplaceAll(path, "ID", res.ID)
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.URL.Path = path
		req.Header.Set("Authorization", "Bearer tok-bob")
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 400 || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		if r, err := fix.s.Get(t.Context(), res.ID); err != nil || r.Status != approvals.Pending {
			t.Fatalf("%s decided the request: %v %v", path, r.Status, err)
		}
	})
}
