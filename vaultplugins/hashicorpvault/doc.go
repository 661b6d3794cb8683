// Package hashicorpvault is writ's HashiCorp Vault backend: it reads
// credentials from a KV version 2 mount through Vault's Go client, with a
// fixed token or AppRole authentication. It runs in process, or as the plugin
// binary cmd/writ-vault-hashicorp.
//
//	b, err := hashicorpvault.New(hashicorpvault.Config{
//		Address:  "https://vault.internal:8200",
//		RoleID:   roleID,
//		SecretID: vaultplugins.Secret(secretID), // from the environment or a file
//	})
//	cred, err := b.Fetch(ctx, vaultplugins.Request{Ref: "salesforce/users/alice#token@3"})
//	// cred.Value is the "token" key of version 3's data; cred.Version is "3".
//
// A reference is path[#field][@version] (see Ref). Credential.ExpiresAt
// comes from the secret's custom metadata expires_at (RFC 3339) when
// present; custom metadata header and format override the configured ones.
package hashicorpvault
