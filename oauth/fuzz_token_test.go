package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzTokenRequest sends arbitrary form bodies to POST /token, with and
// without a valid client secret: the endpoint answers 200 with a token or
// a 400/401 RFC 6749 error, never a 5xx, never a panic.
func FuzzTokenRequest(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "token_requests", "*.form"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), true)
		f.Add(string(b), false)
	}
	e := newEnv(f)
	e.register(agentSpec{id: "cc", secret: ccSecret, grants: ccGrants, scope: "tools.read tools.call"})
	f.Fuzz(func(t *testing.T, body string, basic bool) {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth("cc", ccSecret)
		}
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%d answer is not JSON: %q", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case http.StatusOK:
			if tok, _ := got["access_token"].(string); tok == "" || got["token_type"] != "Bearer" {
				t.Fatalf("200 without a token: %v", got)
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
			if code, _ := got["error"].(string); code == "" {
				t.Fatalf("%d without an error code: %v", rec.Code, got)
			}
		default:
			t.Fatalf("status %d: %v", rec.Code, got)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control %q", rec.Header().Get("Cache-Control"))
		}
	})
}
