package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

func ExampleMinter() {
	ctx := context.Background()
	dataDir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dataDir)

	db, err := store.OpenSQLite(ctx, dataDir)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	kek, err := tokens.KeyEncryptionKey(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	keys, err := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{})
	if err != nil {
		log.Fatal(err)
	}
	minter, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: "https://writ.example"})
	if err != nil {
		log.Fatal(err)
	}
	defer minter.Close()

	minted, err := minter.Mint(ctx, tokens.MintRequest{
		User: "alice", Agent: "research-bot", Actors: []string{"research-bot"}, Tenant: "acme",
		Audience: "https://tickets.internal", Scopes: []string{"tickets:write"}, DecisionID: "dec-42",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("printed:", minted.Token)

	// A resource server checks the token against writ's JWKS.
	kf, err := keyfunc.NewJWKSetJSON(keys.JWKS())
	if err != nil {
		log.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(minted.Token.Reveal(), claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("typ:", tok.Header["typ"])
	fmt.Println("sub:", claims["sub"], "act:", claims["act"], "client_id:", claims["client_id"])
	fmt.Println("scope:", claims["scope"], "decision_id:", claims["decision_id"])
	// Output:
	// printed: REDACTED
	// typ: at+jwt
	// sub: alice act: map[sub:research-bot] client_id: research-bot
	// scope: tickets:write decision_id: dec-42
}

func ExampleVerifier() {
	ctx := context.Background()
	dataDir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dataDir)

	dev, err := tokens.OpenDevIssuer(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{"mcp://tools"})}, tokens.VerifierOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer verifier.Close()

	token, err := dev.Token(tokens.DevTokenRequest{User: "alice", Agent: "research-bot", Tenant: "acme", Audience: "mcp://tools", Scopes: []string{"tools.call"}})
	if err != nil {
		log.Fatal(err)
	}
	id, err := verifier.Verify(ctx, token.Reveal())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.User, id.Agent, id.Tenant, id.Actors, id.Scopes, id.Dev)

	_, err = verifier.Verify(ctx, token.Reveal()+"x")
	fmt.Println(errors.Is(err, tokens.ErrSignature))
	// Output:
	// alice research-bot acme [research-bot] [tools.call] true
	// true
}

func ExampleVerifier_CacheStats() {
	ctx := context.Background()
	dataDir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dataDir)

	dev, err := tokens.OpenDevIssuer(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{"mcp://tools"})}, tokens.VerifierOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer verifier.Close()
	token, err := dev.Token(tokens.DevTokenRequest{User: "alice", Agent: "research-bot", Audience: "mcp://tools"})
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		if _, err := verifier.Verify(ctx, token.Reveal()); err != nil {
			log.Fatal(err)
		}
		verifier.Wait() // the cache admits entries asynchronously
	}
	hits, misses := verifier.CacheStats()
	fmt.Printf("hit ratio %d/%d\n", hits, hits+misses)
	// Output:
	// hit ratio 2/3
}
