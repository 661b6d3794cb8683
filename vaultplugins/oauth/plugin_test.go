package oauth_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/vaultplugins"
)

// The plugin binary: accounts connected with its connect command (token on
// stdin), then served through a real go-plugin subprocess by the host.
func TestPluginBinary(t *testing.T) {
	ts := newTokenServer(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "writ-vault-oauth")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/writ-vault-oauth").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	rand.Read(key)
	providers := filepath.Join(dir, "providers.json")
	raw, _ := json.Marshal([]map[string]any{{"name": "example", "token_url": ts.srv.URL + "/token", "client_id": clientID, "client_secret": clientSecret}})
	if err := os.WriteFile(providers, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WRIT_VAULT_OAUTH_DATA_DIR=" + filepath.Join(dir, "data"),
		"WRIT_VAULT_OAUTH_KEY=" + base64.StdEncoding.EncodeToString(key),
		"WRIT_VAULT_OAUTH_PROVIDERS_FILE=" + providers,
	}

	rt := ts.grant("alice")
	connect := exec.Command(bin, "connect", "alice", "example", "read", "write")
	connect.Env = env
	connect.Stdin = strings.NewReader(rt.Reveal() + "\n")
	out, err := connect.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `connected example account of user "alice"`) || strings.Contains(string(out), rt.Reveal()) {
		t.Fatalf("connect: %v\n%s", err, out)
	}

	sum, _ := os.ReadFile(bin)
	digest := sha256.Sum256(sum)
	h, err := vaultplugins.NewHost(t.Context(), vaultplugins.HostConfig{Plugins: []vaultplugins.PluginConfig{{
		Name: "oauth", Path: bin, SHA256: hex.EncodeToString(digest[:]), Env: env,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cred, err := h.Fetch(t.Context(), vaultplugins.Request{Backend: "oauth", Ref: "example", User: "alice", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, v, _ := cred.Render(); !strings.HasPrefix(v.Reveal(), "Bearer at-alice-") || cred.Version != "2" {
		t.Fatalf("Fetch through the plugin = %q, version %q", v.Reveal(), cred.Version)
	}
	if ts.count("alice") != 1 || ts.isLive(rt) {
		t.Fatalf("refreshes = %d, old token still live = %v", ts.count("alice"), ts.isLive(rt))
	}
	_, err = h.Fetch(t.Context(), vaultplugins.Request{Backend: "oauth", Ref: "example", User: "alice", Scopes: []string{"admin"}})
	if !errors.Is(err, vaultplugins.ErrDenied) {
		t.Fatalf("ungranted scope through the plugin: %v, want ErrDenied", err)
	}
}
