package hashicorpvault_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/hashicorpvault"
)

// startRealVault runs `vault server -dev` on a free loopback port and returns
// its address and root token. It skips t when no vault binary is on PATH.
func startRealVault(t *testing.T) (addr, root string) {
	t.Helper()
	bin, err := exec.LookPath("vault")
	if err != nil {
		t.Skip("no vault binary on PATH: this test runs against a real `vault server -dev`; " +
			"no registry reachable here ships one, so CI relies on the documented-API test server (TestFetch and others)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	raw := make([]byte, 16)
	rand.Read(raw)
	root = "hvs.writ-test-" + hex.EncodeToString(raw)

	cmd := exec.Command(bin, "server", "-dev", "-dev-listen-address="+addr, "-dev-root-token-id="+root)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vault: %v", err)
	}
	ready := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			// The dev banner, printed once the server is unsealed and listening.
			if !signalled && strings.Contains(sc.Text(), "Root Token:") {
				close(ready)
				signalled = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-drained
	})
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("vault server exited before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("vault server not ready within 60s")
	}
	return "http://" + addr, root
}

func TestRealVault(t *testing.T) {
	addr, root := startRealVault(t)
	ctx := t.Context()

	admin, err := vault.NewClient(&vault.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	admin.SetToken(root)
	if _, err := admin.Sys().HealthWithContext(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	// Dev mode mounts KV v2 at secret/.
	kv := admin.KVv2("secret")
	for _, v := range []string{"sf-real-v1", "sf-real-v2"} {
		if _, err := kv.Put(ctx, "writ/salesforce", map[string]any{"value": v, "token": v + "-tok"}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	if err := kv.PatchMetadata(ctx, "writ/salesforce", vault.KVMetadataPatchInput{
		CustomMetadata: map[string]any{"expires_at": expires.Format(time.RFC3339)},
	}); err != nil {
		t.Fatalf("patch metadata: %v", err)
	}
	if _, err := kv.Put(ctx, "writ/deleted", map[string]any{"value": "gone"}); err != nil {
		t.Fatal(err)
	}
	if err := kv.DeleteVersions(ctx, "writ/deleted", []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "other/secret", map[string]any{"value": "not-for-writ"}); err != nil {
		t.Fatal(err)
	}

	// AppRole with a policy that reads secret/data/writ/* only.
	if err := admin.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	if err := admin.Sys().PutPolicyWithContext(ctx, "writ-read", `path "secret/data/writ/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Logical().WriteWithContext(ctx, "auth/approle/role/writ", map[string]any{"token_policies": "writ-read", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := admin.Logical().ReadWithContext(ctx, "auth/approle/role/writ/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := admin.Logical().WriteWithContext(ctx, "auth/approle/role/writ/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	roleID, _ := rid.Data["role_id"].(string)
	secretID, _ := sid.Data["secret_id"].(string)

	configs := map[string]hashicorpvault.Config{
		"token":   {Address: addr, Token: vaultplugins.Secret(root)},
		"approle": {Address: addr, RoleID: roleID, SecretID: vaultplugins.Secret(secretID)},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			b, err := hashicorpvault.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for ref, want := range map[string]struct{ value, version string }{
				"writ/salesforce":         {"sf-real-v2", "2"},
				"writ/salesforce@1":       {"sf-real-v1", "1"},
				"writ/salesforce#token@1": {"sf-real-v1-tok", "1"},
			} {
				cred, err := b.Fetch(ctx, vaultplugins.Request{Ref: ref})
				if err != nil {
					t.Fatalf("Fetch(%q): %v", ref, err)
				}
				if cred.Value.Reveal() != want.value || cred.Version != want.version || !cred.ExpiresAt.Equal(expires) {
					t.Errorf("Fetch(%q) = %q v%s expires %v, want %q v%s %v", ref, cred.Value.Reveal(), cred.Version, cred.ExpiresAt, want.value, want.version, expires)
				}
			}
			for ref, want := range map[string]error{
				"writ/missing":           vaultplugins.ErrNotFound,
				"writ/salesforce@9":      vaultplugins.ErrNotFound,
				"writ/deleted":           vaultplugins.ErrNotFound,
				"writ/salesforce#absent": vaultplugins.ErrNotFound,
			} {
				if _, err := b.Fetch(ctx, vaultplugins.Request{Ref: ref}); !errors.Is(err, want) {
					t.Errorf("Fetch(%q) = %v, want %v", ref, err, want)
				}
			}
			_, err = b.Fetch(ctx, vaultplugins.Request{Ref: "other/secret"})
			if name == "approle" && !errors.Is(err, vaultplugins.ErrDenied) {
				t.Errorf("outside the policy = %v, want ErrDenied", err)
			}
			if name == "token" && err != nil {
				t.Errorf("root token: %v", err)
			}
		})
	}

	// Revoking every AppRole-issued token: the next Fetch sees 403, finds
	// its token invalid and logs in once more.
	b, err := hashicorpvault.New(configs["approle"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, vaultplugins.Request{Ref: "writ/salesforce"}); err != nil {
		t.Fatal(err)
	}
	revokeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := admin.Logical().WriteWithContext(revokeCtx, "sys/leases/revoke-prefix/auth/approle", nil); err != nil {
		t.Fatalf("revoke approle tokens: %v", err)
	}
	if _, err := b.Fetch(ctx, vaultplugins.Request{Ref: "writ/salesforce"}); err != nil {
		t.Fatalf("Fetch after revocation: %v", err)
	}
}
