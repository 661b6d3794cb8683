// Command writ-vault-local serves the local encrypted vault as a writ vault
// backend plugin. Its environment, set in the plugin's configuration:
//
//	WRIT_VAULT_LOCAL_DATA_DIR   directory holding vault.db
//	WRIT_VAULT_LOCAL_KEY_FILE   file with the base64 key, or
//	WRIT_VAULT_LOCAL_KEY        the base64 key itself
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/local"
)

func main() {
	key, err := local.KeyFromEnv("WRIT_VAULT_LOCAL_KEY")
	if path := os.Getenv("WRIT_VAULT_LOCAL_KEY_FILE"); path != "" {
		key, err = local.KeyFromFile(path)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	store, err := local.Open(context.Background(), local.Config{DataDir: os.Getenv("WRIT_VAULT_LOCAL_DATA_DIR"), Key: key})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vaultplugins.Serve(store) // closes store when the host stops the plugin
}
