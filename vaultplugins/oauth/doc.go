// Package oauth is writ's built-in backend for per-user connected accounts.
// A user connects an account at an OAuth 2.0 provider once; writ seals the
// refresh token with AES-256-GCM (the user and provider as additional data)
// in a table of its own in <data_dir>/oauth.db. When a decision names the
// credential, Fetch trades the refresh token for an access token with the
// refresh grant, narrowed to the decision's scopes (the scope parameter of
// RFC 6749 §6), caches it until shortly before it expires, stores a rotated
// refresh token before serving, and reports a revoked grant as
// vaultplugins.ErrRevoked. It runs in process, or as the plugin binary
// cmd/writ-vault-oauth.
//
//	store, err := oauth.Open(ctx, oauth.Config{
//		DataDir: "./writ-data", Key: key,
//		Providers: []oauth.Provider{{Name: "github", TokenURL: tokenURL, ClientID: id, ClientSecret: secret}},
//	})
//	defer store.Close(ctx)
//	_, err = store.Connect(ctx, "alice", "github", refreshToken, []string{"repo", "read:user"})
//	cred, err := store.Fetch(ctx, vaultplugins.Request{Ref: "github", User: "alice", Scopes: []string{"read:user"}})
//
// A reference is a provider name, for the request's user, or
// "users/{user}/{provider}", which must agree with the request's user when
// it names one.
package oauth
