package hashicorpvault_test

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

func ExampleParseRef() {
	ref, err := hashicorpvault.ParseRef("salesforce/users/alice#token@3")
	fmt.Println(ref.Path, ref.Field, ref.Version, err)
	_, err = hashicorpvault.ParseRef("../sys/seal")
	fmt.Println(err != nil)
	// Output:
	// salesforce/users/alice token 3 <nil>
	// true
}

func ExampleBackend_Fetch() {
	vault := newFakeVault() // a KV v2 server on 127.0.0.1
	defer vault.Close()
	vault.put("github/ci", map[string]any{"value": "ghp_v1"})
	vault.put("github/ci", map[string]any{"value": "ghp_v2"})
	token := vault.issue()

	b, err := hashicorpvault.New(hashicorpvault.Config{Address: vault.URL(), Token: vaultplugins.Secret(token)})
	if err != nil {
		panic(err)
	}
	for _, ref := range []string{"github/ci", "github/ci@1"} {
		cred, err := b.Fetch(context.Background(), vaultplugins.Request{Ref: ref})
		if err != nil {
			panic(err)
		}
		header, value, _ := cred.Render()
		fmt.Println(ref, cred.Version, header, value, value.Reveal())
	}
	// Output:
	// github/ci 2 Authorization REDACTED Bearer ghp_v2
	// github/ci@1 1 Authorization REDACTED Bearer ghp_v1
}
