package oauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/oauth"
)

func Example() {
	ctx := context.Background()
	// A provider's token endpoint, answering the refresh grant.
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": "access-for-" + r.PostForm.Get("scope"), "token_type": "bearer",
			"expires_in": 3600, "refresh_token": "rotated-refresh-token",
		})
	}))
	defer idp.Close()
	dir, _ := os.MkdirTemp("", "oauth-example-")
	defer os.RemoveAll(dir)

	store, err := oauth.Open(ctx, oauth.Config{
		DataDir: dir,
		Key:     make([]byte, oauth.KeySize), // load a real key from a file or the environment
		Providers: []oauth.Provider{{
			Name: "github", TokenURL: idp.URL, ClientID: "writ", ClientSecret: "client-secret",
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close(ctx)

	// Once, when alice connects her account.
	if _, err := store.Connect(ctx, "alice", "github", "alice-refresh-token", []string{"repo", "read:user"}); err != nil {
		fmt.Println(err)
		return
	}
	// At call time, for the scopes the decision names.
	cred, err := store.Fetch(ctx, vaultplugins.Request{Ref: "github", User: "alice", Scopes: []string{"read:user"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	header, value, _ := cred.Render()
	fmt.Println(header, value, value.Reveal(), "version", cred.Version)
	// Output: Authorization REDACTED Bearer access-for-read:user version 2
}
