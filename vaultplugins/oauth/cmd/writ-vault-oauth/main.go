// Command writ-vault-oauth serves the oauth vault backend as a writ vault
// backend plugin, and connects accounts to its store. Its environment, set
// in the plugin's configuration:
//
//	WRIT_VAULT_OAUTH_DATA_DIR        directory holding oauth.db
//	WRIT_VAULT_OAUTH_KEY_FILE        file with the base64 key (mode 0600), or
//	WRIT_VAULT_OAUTH_KEY             the base64 key itself
//	WRIT_VAULT_OAUTH_PROVIDERS_FILE  JSON list of providers (mode 0600):
//	  [{"name": "github", "token_url": "https://github.com/login/oauth/access_token",
//	    "client_id": "...", "client_secret": "...", "format": "Bearer {value}"}]
//
// To connect an account, run it with the same environment:
//
//	writ-vault-oauth connect USER PROVIDER [SCOPE...] < refresh-token
//
// The refresh token is read from stdin, never from the command line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/local"
	"github.com/writ-dev/writ/vaultplugins/oauth"
)

func main() {
	store, err := open(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "writ-vault-oauth:", err)
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "connect" {
		err := connect(context.Background(), store, os.Args[2:], os.Stdin)
		store.Close(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, "writ-vault-oauth:", err)
			os.Exit(1)
		}
		return
	}
	vaultplugins.Serve(store) // closes store when the host stops the plugin
}

func open(ctx context.Context) (*oauth.Store, error) {
	key, err := local.KeyFromEnv("WRIT_VAULT_OAUTH_KEY")
	if path := os.Getenv("WRIT_VAULT_OAUTH_KEY_FILE"); path != "" {
		key, err = local.KeyFromFile(path)
	}
	if err != nil {
		return nil, err
	}
	providers, err := readProviders(os.Getenv("WRIT_VAULT_OAUTH_PROVIDERS_FILE"))
	if err != nil {
		return nil, err
	}
	return oauth.Open(ctx, oauth.Config{DataDir: os.Getenv("WRIT_VAULT_OAUTH_DATA_DIR"), Key: key, Providers: providers})
}

func readProviders(path string) ([]oauth.Provider, error) {
	if path == "" {
		return nil, fmt.Errorf("WRIT_VAULT_OAUTH_PROVIDERS_FILE is not set")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("providers file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("providers file %s has mode %v, want 0600 or stricter", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("providers file: %w", err)
	}
	defer f.Close()
	var raw []struct {
		oauth.Provider
		ClientSecret string `json:"client_secret"`
	}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("providers file %s: %w", path, err)
	}
	out := make([]oauth.Provider, len(raw))
	for i, r := range raw {
		out[i] = r.Provider
		out[i].ClientSecret = vaultplugins.Secret(r.ClientSecret)
	}
	return out, nil
}

func connect(ctx context.Context, store *oauth.Store, args []string, stdin io.Reader) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: writ-vault-oauth connect USER PROVIDER [SCOPE...] < refresh-token")
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, oauth.MaxTokenBytes+2))
	if err != nil {
		return fmt.Errorf("read refresh token from stdin: %w", err)
	}
	token := strings.TrimRight(string(raw), "\r\n")
	a, err := store.Connect(ctx, args[0], args[1], vaultplugins.Secret(token), args[2:])
	if err != nil {
		return err
	}
	fmt.Printf("connected %s account of user %q (scopes %q)\n", a.Provider, a.User, a.Scopes)
	return nil
}
