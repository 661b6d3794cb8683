// Package local is writ's built-in encrypted vault backend: values sealed
// with AES-256-GCM (a random nonce per value, the reference as additional
// data) in a table of their own in <data_dir>/vault.db. It runs in process,
// or as the plugin binary cmd/writ-vault-local.
//
//	key, err := local.KeyFromFile("/etc/writ/vault.key")
//	store, err := local.Open(ctx, local.Config{DataDir: "./writ-data", Key: key})
//	defer store.Close(ctx)
//	_, err = store.Put(ctx, "github/ci", vaultplugins.Secret(token), local.Meta{Format: "Bearer {value}"})
//	cred, err := store.Fetch(ctx, vaultplugins.Request{Ref: "github/ci"})
//
// To rotate, open with the new key and the old one in OldKeys, call Rotate,
// then drop the old key.
package local
