package hashicorpvault_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  hashicorpvault.Config
		ok   bool
	}{
		{"token", hashicorpvault.Config{Address: "http://127.0.0.1:8200", Token: "t"}, true},
		{"approle", hashicorpvault.Config{Address: "https://vault:8200", RoleID: "r", SecretID: "s"}, true},
		{"no address", hashicorpvault.Config{Token: "t"}, false},
		{"bad scheme", hashicorpvault.Config{Address: "ftp://vault", Token: "t"}, false},
		{"no auth", hashicorpvault.Config{Address: "http://v"}, false},
		{"both", hashicorpvault.Config{Address: "http://v", Token: "t", RoleID: "r", SecretID: "s"}, false},
		{"role without secret", hashicorpvault.Config{Address: "http://v", RoleID: "r"}, false},
		{"bad mount", hashicorpvault.Config{Address: "http://v", Token: "t", Mount: "a/../b"}, false},
		{"bad format", hashicorpvault.Config{Address: "http://v", Token: "t", Format: "Bearer {value"}, false},
		{"negative timeout", hashicorpvault.Config{Address: "http://v", Token: "t", Timeout: -time.Second}, false},
		{"missing CA file", hashicorpvault.Config{Address: "https://v", Token: "t", CACert: "/nonexistent/ca.pem"}, false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, vaultplugins.ErrInvalidConfig)) {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if _, nerr := hashicorpvault.New(tt.cfg); (nerr == nil) != tt.ok {
			t.Errorf("%s: New = %v", tt.name, nerr)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secretFile, []byte("sid-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		hashicorpvault.EnvAddress:            "http://127.0.0.1:8200",
		hashicorpvault.EnvMount:              "kv",
		hashicorpvault.EnvNamespace:          "team-a",
		hashicorpvault.EnvField:              "token",
		hashicorpvault.EnvTimeout:            "3s",
		hashicorpvault.EnvRoleID:             "rid",
		hashicorpvault.EnvSecretID:           "sid-from-env",
		hashicorpvault.EnvSecretID + "_FILE": secretFile,
	}
	cfg, err := hashicorpvault.ConfigFromEnv(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mount != "kv" || cfg.Namespace != "team-a" || cfg.Field != "token" || cfg.Timeout != 3*time.Second ||
		cfg.RoleID != "rid" || cfg.SecretID.Reveal() != "sid-from-file" || cfg.Token != "" {
		t.Fatalf("ConfigFromEnv = %+v", cfg)
	}

	vars[hashicorpvault.EnvSecretID+"_FILE"] = filepath.Join(dir, "missing")
	if _, err := hashicorpvault.ConfigFromEnv(func(k string) string { return vars[k] }); !errors.Is(err, vaultplugins.ErrInvalidConfig) {
		t.Fatalf("missing file: %v", err)
	}
	vars[hashicorpvault.EnvSecretID+"_FILE"] = ""
	vars[hashicorpvault.EnvTimeout] = "soon"
	if _, err := hashicorpvault.ConfigFromEnv(func(k string) string { return vars[k] }); err == nil || strings.Contains(err.Error(), "sid-from-env") {
		t.Fatalf("bad timeout: %v", err)
	}
}
