package oauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writ-dev/writ/oauth"
)

// TestAuthorizeNeverRedirects: every request to /authorize is a 400 JSON
// error, never a redirect, and echoes nothing it was sent.
func TestAuthorizeNeverRedirects(t *testing.T) {
	_, srv := serveDiscovery(t, discoveryConfigs[0].cfg)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const evil = "https://evil.example.com/steal"
	tests := []struct {
		name   string
		method string
		query  string
		form   string
		want   string
	}{
		{"no parameters", "GET", "", "", "invalid_request"},
		{"empty response_type", "GET", "response_type=&redirect_uri=" + evil, "", "invalid_request"},
		{"code flow", "GET", "response_type=code&client_id=agent&redirect_uri=" + evil + "&state=xyz&code_challenge=abc&code_challenge_method=S256", "", "unsupported_response_type"},
		{"implicit", "GET", "response_type=token&client_id=agent&redirect_uri=" + evil, "", "unsupported_response_type"},
		{"metadata-document client", "GET", "response_type=code&client_id=https%3A%2F%2Fagent.example.com%2Fclient.json&redirect_uri=" + evil, "", "unsupported_response_type"},
		{"repeated response_type", "GET", "response_type=code&response_type=token", "", "invalid_request"},
		{"POST form", "POST", "", "response_type=code&redirect_uri=" + evil, "unsupported_response_type"},
		{"POST oversized", "POST", "", "response_type=code&pad=" + strings.Repeat("a", 64<<10), "invalid_request"},
		{"HEAD", "HEAD", "response_type=code&redirect_uri=" + evil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/authorize?"+tt.query, strings.NewReader(tt.form))
			if err != nil {
				t.Fatal(err)
			}
			if tt.form != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("Location %q set", loc)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if tt.method == "HEAD" {
				return
			}
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if e.Error != tt.want {
				t.Errorf("error %q, want %q", e.Error, tt.want)
			}
			if strings.Contains(string(body), "evil") || strings.Contains(string(body), "xyz") {
				t.Errorf("body echoes the request: %s", body)
			}
		})
	}
}

// TestHandleAuthorizeDirect: the handler alone, for a mux the caller owns.
func TestHandleAuthorizeDirect(t *testing.T) {
	rec := httptest.NewRecorder()
	oauth.HandleAuthorize(rec, httptest.NewRequest("GET", "/authorize?response_type=code&redirect_uri=https://a.example.com/cb", nil))
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" ||
		!strings.Contains(rec.Body.String(), `"unsupported_response_type"`) {
		t.Errorf("got %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}
