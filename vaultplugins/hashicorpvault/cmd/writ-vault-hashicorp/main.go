// Command writ-vault-hashicorp serves HashiCorp Vault KV v2 as a writ vault
// backend plugin. It is configured only through its environment, set in the
// plugin's configuration (secrets never on the command line):
//
//	WRIT_VAULT_HASHICORP_ADDR            Vault URL (required)
//	WRIT_VAULT_HASHICORP_MOUNT           KV v2 mount (default "secret")
//	WRIT_VAULT_HASHICORP_NAMESPACE       X-Vault-Namespace
//	WRIT_VAULT_HASHICORP_FIELD           data key holding the value (default "value")
//	WRIT_VAULT_HASHICORP_HEADER          upstream header (default Authorization)
//	WRIT_VAULT_HASHICORP_FORMAT          header format (default "Bearer {value}")
//	WRIT_VAULT_HASHICORP_CA_CERT         PEM file of CAs for Vault's TLS
//	WRIT_VAULT_HASHICORP_TIMEOUT         per-request timeout (default 10s)
//	WRIT_VAULT_HASHICORP_TOKEN[_FILE]    a Vault token, or
//	WRIT_VAULT_HASHICORP_ROLE_ID[_FILE]  an AppRole role ID and
//	WRIT_VAULT_HASHICORP_SECRET_ID[_FILE] secret ID
//	WRIT_VAULT_HASHICORP_APPROLE_MOUNT   AppRole mount (default "approle")
package main

import (
	"fmt"
	"os"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

func main() {
	cfg, err := hashicorpvault.ConfigFromEnv(os.Getenv)
	if err == nil {
		var b *hashicorpvault.Backend
		if b, err = hashicorpvault.New(cfg); err == nil {
			vaultplugins.Serve(b)
			return
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
