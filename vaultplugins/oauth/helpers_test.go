package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/writ-dev/writ/vaultplugins"
)

// hydraRedirect is the redirect URI of the client registered at Hydra; the
// headless flow in authorize never follows it.
const hydraRedirect = "http://127.0.0.1:9/callback"

// registerClient registers an authorization-code client with refresh
// tokens for scopes at Hydra, authenticating with client_secret_basic.
func (h hydra) registerClient(t *testing.T, scopes []string) *oauth2.Config {
	t.Helper()
	var client struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	callJSON(t, "POST", h.admin+"/admin/clients", map[string]any{
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      strings.Join(scopes, " "),
		"redirect_uris":              []string{hydraRedirect},
		"token_endpoint_auth_method": "client_secret_basic",
	}, &client)
	return &oauth2.Config{
		ClientID: client.ClientID, ClientSecret: client.ClientSecret, RedirectURL: hydraRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: h.public + "/oauth2/auth", TokenURL: h.public + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
}

// revoke revokes the grant behind refreshToken at Hydra (RFC 7009).
func (h hydra) revoke(t *testing.T, conf *oauth2.Config, refreshToken vaultplugins.Secret) {
	t.Helper()
	form := url.Values{"token": {refreshToken.Reveal()}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", h.public+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(conf.ClientID), url.QueryEscape(conf.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}
}
