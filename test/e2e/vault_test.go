package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-dev/writ/test/writtest"
)

// credentialPolicy names a vaulted credential for every delegated call.
const credentialPolicy = `package writ.authz

decision := {
	"allow": true,
	"reason": "vaulted credential injected",
	"audience": "https://api.example",
	"scopes": ["api"],
	"credential": {"backend": input.resource.backend, "ref": input.resource.ref, "header": "x-api-key"},
} if {
	input.identity.user
}
`

// TestVaultInjectionEndToEnd: a value put with `writ vault put` (from
// stdin) reaches the upstream through Check, from the in-process local
// store and from a real plugin subprocess; the agent never sees it and it is
// in no log or evidence record.
func TestVaultInjectionEndToEnd(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	const localValue = "local-7f3a9c-upstream-key"
	const pluginValue = "plugin-1d2e3f-upstream-key"

	dataDir := filepath.Join(t.TempDir(), "data")
	w0 := &writtest.Writ{Bin: bin}
	if out, err := w0.RunStdin(t, localValue+"\n", "vault", "put", "--data-dir", dataDir, "salesforce/users/alice"); err != nil || !strings.Contains(out, "stored salesforce/users/alice version 1") {
		t.Fatalf("vault put: %v %s", err, out)
	}
	if out, err := w0.Run(t, "vault", "list", "--data-dir", dataDir); err != nil || !strings.Contains(out, "salesforce/users/alice") || strings.Contains(out, localValue) {
		t.Fatalf("vault list: %v %s", err, out)
	}

	plugin := filepath.Join(t.TempDir(), "writ-vault-example")
	build := exec.Command("go", "build", "-o", plugin, "./vaultplugins/example")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)

	policies := t.TempDir()
	if err := os.WriteFile(filepath.Join(policies, "authz.rego"), []byte(credentialPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	w := writtest.Start(t, bin, writtest.Options{
		Issuers: []*writtest.Issuer{idp}, DataDir: dataDir, Args: []string{"--policies", policies},
		Config: "vault:\n  plugins:\n    - name: example\n      path: " + plugin + "\n      sha256: " + hex.EncodeToString(sum[:]) +
			"\n      env: [EXAMPLE_SECRET_GITHUB=" + pluginValue + "]\nlog:\n  level: debug\n",
	})
	tok := idp.Delegated(t, "alice", "research-bot", "tenant-a")
	var ids []string
	for _, tc := range []struct{ backend, ref, want string }{
		{"local", "salesforce/users/{user}", localValue},
		{"example", "github", "Bearer " + pluginValue},
	} {
		resp, err := w.Check(t.Context(), writtest.ToolCall("query", nil, tok, map[string]string{
			"resource": "mcp://tools", "tenant": "tenant-a", "backend": tc.backend, "ref": tc.ref,
		}))
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("%s: want allow, got %v %v", tc.backend, err, resp)
		}
		if got := writtest.Header(resp, "x-api-key"); got != tc.want {
			t.Errorf("%s: x-api-key = %q, want %q", tc.backend, got, tc.want)
		}
		ids = append(ids, writtest.Header(resp, "x-writ-decision-id"))
	}
	// A reference the backend does not hold: a 403 naming it, not an allow.
	resp, err := w.Check(t.Context(), writtest.ToolCall("query", nil, tok, map[string]string{
		"resource": "mcp://tools", "tenant": "tenant-a", "backend": "local", "ref": "salesforce/users/nobody"}))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 403 || !strings.Contains(resp.GetDeniedResponse().GetBody(), "no such credential") {
		t.Errorf("missing credential: %v %v", err, resp)
	}

	metrics, err := http.Get("http://" + w.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scraped, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(scraped), "writ_decisions_total") {
		t.Fatalf("no metrics scraped:\n%.500s", scraped)
	}

	if err := w.Terminate(t); err != nil {
		t.Fatal(err)
	}
	out, err := w.Run(t, "audit", "show", "--data-dir", dataDir, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Credential struct{ Backend, Ref, Version string } `json:"credential"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Credential.Backend != "local" || rec.Credential.Ref != "salesforce/users/alice" || rec.Credential.Version != "1" {
		t.Errorf("evidence credential: %v %s", err, out)
	}
	db, _ := os.ReadFile(filepath.Join(dataDir, "writ.db"))
	wal, _ := os.ReadFile(filepath.Join(dataDir, "writ.db-wal"))
	vault, _ := os.ReadFile(filepath.Join(dataDir, "vault.db"))
	for where, text := range map[string]string{"logs": w.Stdout() + w.Stderr(), "evidence database": string(db) + string(wal),
		"vault database": string(vault), "metrics": string(scraped)} {
		for _, v := range []string{localValue, pluginValue} {
			if strings.Contains(text, v) {
				t.Errorf("a credential value appears in the %s", where)
			}
		}
	}
}
