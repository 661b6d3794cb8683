package approvals_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/store"
)

// oneToken authenticates a single approver.
type oneToken struct{}

func (oneToken) Authenticate(_ context.Context, bearer string) (approvals.Approver, error) {
	if bearer != "alice-token" {
		return approvals.Approver{}, fmt.Errorf("unknown token")
	}
	return approvals.Approver{Subject: "alice", Groups: []string{"finance"}, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func ExampleHandler() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dir)
	db, _ := store.OpenSQLite(ctx, dir)
	defer db.Close()
	s, _ := approvals.Open(ctx, db, approvals.Options{})
	defer s.Close()
	res, _ := s.Gate(ctx, approvals.Call{User: "user-7", Agent: "agent-3", Action: "refund"},
		approvals.Requirement{BindingMessage: "Refund $120 to ACME?", Approvers: []string{"group:finance"}})

	mux := http.NewServeMux()
	api := approvals.Handler(s, oneToken{}, approvals.HandlerOptions{})
	mux.Handle("/approvals", api)
	mux.Handle("/approvals/", api)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/approvals/"+res.ID+"/approve", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"status":"approved"`), strings.Contains(string(body), `"approver":"user:alice"`))
	// Output: 200 true true
}

func ExampleInbox() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dir)
	db, _ := store.OpenSQLite(ctx, dir)
	defer db.Close()
	s, _ := approvals.Open(ctx, db, approvals.Options{})
	defer s.Close()

	mux := http.NewServeMux()
	inbox := approvals.Inbox(s, oneToken{}, approvals.HandlerOptions{})
	mux.Handle("/inbox", inbox)
	mux.Handle("/inbox/", inbox)

	// A browser signs in once with its token and gets a session cookie.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/inbox/login", strings.NewReader("token=alice-token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	mux.ServeHTTP(rec, req)
	c := rec.Result().Cookies()[0]
	fmt.Println(rec.Code, rec.Header().Get("Location"), c.HttpOnly, c.SameSite == http.SameSiteStrictMode)
	// Output: 303 /inbox true true
}
