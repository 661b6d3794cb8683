package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/oauth"
	"github.com/writ-dev/writ/store"
)

func ExampleCIBA_Metadata() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dir)
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	s, err := approvals.Open(ctx, db, approvals.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ciba, err := oauth.NewCIBA(oauth.CIBAConfig{
		Issuer: "https://writ.example",
		Clients: []oauth.Client{{
			ID:         "agent-3",
			SecretHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", // SHA-256 of "test"
		}},
	}, s, nopMinter{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ciba.Close()
	mux := http.NewServeMux()
	ciba.Routes(mux)

	m := ciba.Metadata()
	fmt.Println(m["backchannel_authentication_endpoint"])
	fmt.Println(m["backchannel_token_delivery_modes_supported"])
	fmt.Println(m["token_endpoint_auth_methods_supported"])
	// Output:
	// https://writ.example/bc-authorize
	// [poll ping]
	// [client_secret_basic]
}
