package extauthz_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/extauthz"
	"github.com/writ-dev/writ/policies"
	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/test/writtest"
	"github.com/writ-dev/writ/tokens"
)

// A Check pipeline of writ's real parts, deciding one MCP tools/call from a
// delegated token with the built-in policy.
func ExampleServer_Check() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-example-")
	defer os.RemoveAll(dir)

	db, _ := store.OpenSQLite(ctx, dir)
	defer db.Close()
	kek, _ := tokens.KeyEncryptionKey(dir)
	keyring, _ := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{})
	minter, _ := tokens.NewMinter(keyring, tokens.MinterOptions{Issuer: "https://writ.example"})
	defer minter.Close()
	dev, _ := tokens.OpenDevIssuer(dir)
	verifier, _ := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{"https://writ.example"})}, tokens.VerifierOptions{})
	defer verifier.Close()
	evidence, _ := audit.Open(ctx, db, audit.Options{})
	defer evidence.Close(ctx)

	srv, err := extauthz.New(extauthz.Deps{
		Verifier: verifier,
		Engine:   policies.NewEngine(policies.Options{}),
		Minter:   minter,
		Evidence: evidence,
	}, extauthz.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}

	agentToken, _ := dev.Token(tokens.DevTokenRequest{User: "alice", Agent: "research-bot", Tenant: "tenant-a", Audience: "https://writ.example"})
	resp, _ := srv.Check(ctx, writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, agentToken.Reveal(), nil))

	ok := resp.GetOkResponse()
	fmt.Println("allowed:", ok != nil)
	fmt.Println("writ token set:", strings.HasPrefix(writtest.Header(resp, "authorization"), "Bearer "))
	fmt.Println("removed upstream:", ok.GetHeadersToRemove())
	// Output:
	// allowed: true
	// writ token set: true
	// removed upstream: [txn-token proxy-authorization]
}
