package main

import (
	"context"
	"errors"
	"testing"

	"github.com/writ-dev/writ/tokens"
)

// Approvers are people: a delegated token (an agent acting for its user)
// cannot approve, even though it names the user as its subject.
func TestApproverRefusesDelegatedTokens(t *testing.T) {
	ctx := context.Background()
	dev, err := tokens.OpenDevIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokens.NewVerifier(ctx, []tokens.IssuerConfig{dev.IssuerConfig([]string{"writ"})}, tokens.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	auth := approverAuthenticator{verifier: v, ownIssuer: "https://writ.test"}

	delegated, err := dev.Token(tokens.DevTokenRequest{User: "alice", Agent: "pay-bot", Audience: "writ"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, delegated.Reveal()); !errors.Is(err, errDelegatedApprover) {
		t.Fatalf("delegated token: %v, want errDelegatedApprover", err)
	}
}
