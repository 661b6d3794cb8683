package tokens_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/tokens"
)

func TestDevIssuer(t *testing.T) {
	dir := t.TempDir()
	dev, err := tokens.OpenDevIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, tokens.DevIssuerKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	pemData, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(pemData, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("key file is not a PKCS#8 PEM: %v", err)
	}

	cfg := dev.IssuerConfig([]string{idpAudience})
	if cfg.Issuer != tokens.DevIssuerName || !cfg.Dev || !slices.Equal(cfg.Algorithms, []string{"ES256"}) || cfg.Validate() != nil {
		t.Fatalf("config = %+v, validate %v", cfg, cfg.Validate())
	}
	v := newVerifier(t, []tokens.IssuerConfig{cfg}, tokens.VerifierOptions{})
	tok, err := dev.Token(tokens.DevTokenRequest{User: "alice", Agent: "research-bot", Tenant: "t1", Audience: idpAudience, Scopes: []string{"tools.call"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), tok.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice" || id.Agent != "research-bot" || id.ClientID != "research-bot" || id.Tenant != "t1" ||
		!slices.Equal(id.Actors, []string{"research-bot"}) || !slices.Equal(id.Scopes, []string{"tools.call"}) ||
		!id.Dev || id.Issuer != tokens.DevIssuerName {
		t.Fatalf("identity = %+v", id)
	}
	if d := id.ExpiresAt.Sub(time.Unix(int64(id.Claims["iat"].(float64)), 0)); d != time.Hour {
		t.Fatalf("default TTL = %v, want 1h", d)
	}

	// Reopening loads the same key: old tokens still verify.
	again, err := tokens.OpenDevIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	v2 := newVerifier(t, []tokens.IssuerConfig{again.IssuerConfig([]string{idpAudience})}, tokens.VerifierOptions{})
	if _, err := v2.Verify(context.Background(), tok.Reveal()); err != nil {
		t.Fatalf("reopened dev issuer lost its key: %v", err)
	}

	// An agent's own token.
	own, err := dev.Token(tokens.DevTokenRequest{Agent: "research-bot", Audience: idpAudience})
	if err != nil {
		t.Fatal(err)
	}
	id, err = v.Verify(context.Background(), own.Reveal())
	if err != nil || id.User != "" || id.Agent != "research-bot" {
		t.Fatalf("agent token: %+v, %v", id, err)
	}
	if _, err := dev.Token(tokens.DevTokenRequest{User: "alice", Audience: idpAudience}); err == nil {
		t.Fatal("token without agent minted")
	}

	// A key file others may read is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.OpenDevIssuer(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: err = %v", err)
	}
}
