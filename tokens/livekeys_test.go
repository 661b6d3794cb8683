package tokens_test

import (
	"context"
	"errors"
	"testing"

	"github.com/writ-dev/writ/tokens"
)

// writ trusts its own token endpoint through the keyring's live key set:
// a token signed after a rotation verifies without restarting the verifier,
// and a token signed by another keyring does not.
func TestVerifierLiveKeySet(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, t.TempDir())
	keys := openKeyring(t, db, tokens.KeyringOptions{})
	mint := func(k *tokens.Keyring) string {
		t.Helper()
		m, err := tokens.NewMinter(k, tokens.MinterOptions{Issuer: writIssuer})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		out, err := m.Mint(ctx, tokens.MintRequest{Agent: "agent-1", Audience: "https://mcp.test/mcp", Scopes: []string{"tools.call"}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Token.Reveal()
	}
	v := newVerifier(t, []tokens.IssuerConfig{{Issuer: writIssuer, KeySet: keys.JWKS, Audiences: []string{"https://mcp.test/mcp"}}}, tokens.VerifierOptions{})

	id, err := v.Verify(ctx, mint(keys))
	if err != nil {
		t.Fatalf("token of the current key: %v", err)
	}
	if id.Agent != "agent-1" || id.User != "" {
		t.Fatalf("identity: agent %q user %q, want agent-1 and no user", id.Agent, id.User)
	}

	if _, err := keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, mint(keys)); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}

	other := openKeyring(t, openDB(t, t.TempDir()), tokens.KeyringOptions{})
	if _, err := v.Verify(ctx, mint(other)); !errors.Is(err, tokens.ErrUnknownKey) && !errors.Is(err, tokens.ErrSignature) {
		t.Fatalf("token of a foreign keyring: got %v, want an unknown-key or signature error", err)
	}
}

// A per-request writ token (it carries decision_id) is meant for the
// upstream alone: presented back to writ as a credential, it is refused.
func TestVerifierRefusesPerRequestTokens(t *testing.T) {
	ctx := context.Background()
	keys := openKeyring(t, openDB(t, t.TempDir()), tokens.KeyringOptions{})
	m, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: writIssuer})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v := newVerifier(t, []tokens.IssuerConfig{{Issuer: writIssuer, KeySet: keys.JWKS, Audiences: []string{"https://mcp.test/mcp"}, RefuseClaims: []string{"decision_id"}}}, tokens.VerifierOptions{})
	endpoint, err := m.Mint(ctx, tokens.MintRequest{Agent: "agent-1", Audience: "https://mcp.test/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, endpoint.Token.Reveal()); err != nil {
		t.Fatalf("token without decision_id: %v", err)
	}
	perRequest, err := m.Mint(ctx, tokens.MintRequest{User: "alice", Agent: "agent-1", Actors: []string{"agent-1"}, Audience: "https://mcp.test/mcp", DecisionID: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, perRequest.Token.Reveal()); !errors.Is(err, tokens.ErrType) {
		t.Fatalf("per-request token: got %v, want ErrType", err)
	}
}
