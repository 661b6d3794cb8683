package hashicorpvault_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

// The backend behind the real gRPC shim: values, versions and every error
// class arrive as the host sees them.
func TestThroughPlugintest(t *testing.T) {
	e := newEnv(t, true, nil)
	b := plugintest.New(t, e.b)
	cred, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice#token@1", User: "alice"})
	if err != nil || cred.Value.Reveal() != "sf-tok-778899" || cred.Version != "1" {
		t.Fatalf("Fetch = %+v, %v", cred, err)
	}
	cred, err = b.Fetch(t.Context(), vaultplugins.Request{Ref: "db/basic"})
	if err != nil || cred.Values["password"].Reveal() != "db-pass-w2e3" || cred.ExpiresAt.IsZero() || cred.Header != "X-DB-Auth" {
		t.Fatalf("Fetch db/basic = %+v, %v", cred, err)
	}
	for ref, want := range map[string]error{
		"nobody/here":   vaultplugins.ErrNotFound,
		"gone/deleted":  vaultplugins.ErrNotFound,
		"denied/path":   vaultplugins.ErrDenied,
		"old/key":       vaultplugins.ErrRevoked,
		"bad/meta":      vaultplugins.ErrBackend,
		"../etc/passwd": vaultplugins.ErrInvalidRequest,
	} {
		if _, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: ref}); !errors.Is(err, want) {
			t.Errorf("Fetch(%q) = %v, want %v", ref, err, want)
		}
	}
	d, err := b.Describe(t.Context())
	if err != nil || d.Name != hashicorpvault.Name {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
	e.f.Close()
	if _, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "salesforce/users/alice@2"}); !errors.Is(err, vaultplugins.ErrUnavailable) {
		t.Fatalf("server down = %v, want ErrUnavailable", err)
	}
}

// The plugin binary, launched by writ's Host as a subprocess, configured
// only through its environment (the secret ID from a file).
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ-vault-hashicorp")
	build := exec.Command("go", "build", "-o", bin, "./cmd/writ-vault-hashicorp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	secretFile := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeVault()
	t.Cleanup(f.Close)
	seed(f)
	f.roleID, f.secretID = roleID, secretID

	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Plugins: []vaultplugins.PluginConfig{{
		Name: "vault", Path: bin, SHA256: hex.EncodeToString(sum[:]),
		Env: []string{
			hashicorpvault.EnvAddress + "=" + f.URL(),
			hashicorpvault.EnvRoleID + "=" + roleID,
			hashicorpvault.EnvSecretID + "_FILE=" + secretFile,
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "vault", Ref: "salesforce/users/alice@1"})
	if err != nil {
		t.Fatal(err)
	}
	header, value, err := cred.Render()
	if err != nil || header != "Authorization" || value.Reveal() != "Bearer sf-v1-a1b2c3" || cred.Version != "1" {
		t.Fatalf("Render = %q %q %v, version %q", header, value.Reveal(), err, cred.Version)
	}
	if _, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "vault", Ref: "denied/path"}); !errors.Is(err, vaultplugins.ErrDenied) {
		t.Fatalf("denied = %v", err)
	}
	if logins, _, _, _ := f.counts(); logins != 1 {
		t.Fatalf("logins %d, want 1", logins)
	}
}
