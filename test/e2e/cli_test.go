package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/writ-dev/writ/test/writtest"
)

// TestQuickStart runs the README's three commands against the real binary:
// serve --dev, dev token, check.
func TestQuickStart(t *testing.T) {
	bin := writtest.Build(t)
	w := writtest.Start(t, bin, writtest.Options{Args: []string{"--dev"}})
	if !strings.Contains(w.Stdout(), "dev=true") {
		t.Fatalf("serving line does not say dev mode: %s", w.Stdout())
	}
	tok, err := w.Run(t, "dev", "token", "--user", "alice", "--agent", "research-bot", "--tenant", "tenant-a", "--data-dir", w.DataDir)
	if err != nil {
		t.Fatalf("dev token: %v %s", err, tok)
	}
	tok = strings.TrimSpace(tok)
	out, err := w.Run(t, "check", "--addr", w.GRPC, "--api", "http://"+w.API, "--tool", "search_issues", "--args", `{"q":"bug"}`, "--token", tok)
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	for _, want := range []string{"decision: ALLOW\n", "writ token: verified against http://" + w.API + "/.well-known/jwks.json\n", `"sub": "alice"`, `"scope": "mcp:tools:search_issues"`, `"dev": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	id := regexp.MustCompile(`decision_id: (\S+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no decision id in:\n%s", out)
	}

	// A high-sensitivity resource waits for a human's approval.
	out, err = w.Run(t, "check", "--addr", w.GRPC, "--api", "http://"+w.API, "--tool", "refund", "--sensitivity", "high", "--token", tok)
	if err == nil || !strings.Contains(out, "decision: DENY\nstatus: 403\n") || !strings.Contains(out, `"error":"approval_pending"`) {
		t.Errorf("high sensitivity: %v\n%s", err, out)
	}
	// The README's next step: approve from the CLI, and the same check passes.
	if m := regexp.MustCompile(`"auth_req_id":"([^"]+)"`).FindStringSubmatch(out); m != nil {
		if o, err := w.Run(t, "approvals", "approve", "--data-dir", w.DataDir, "--as", "alice", m[1]); err != nil {
			t.Fatalf("approvals approve: %v %s", err, o)
		}
		out, err = w.Run(t, "check", "--addr", w.GRPC, "--api", "http://"+w.API, "--tool", "refund", "--sensitivity", "high", "--token", tok)
		if err != nil || !strings.Contains(out, "decision: ALLOW\n") || !strings.Contains(out, `"approval_id": "`+m[1]+`"`) {
			t.Errorf("approved check: %v\n%s", err, out)
		}
	}
	// No token: 401.
	out, err = w.Run(t, "check", "--addr", w.GRPC, "--tool", "search_issues")
	if err == nil || !strings.Contains(out, "status: 401") {
		t.Errorf("no token: %v\n%s", err, out)
	}

	if err := w.Terminate(t); err != nil {
		t.Fatal(err)
	}
	out, err = w.Run(t, "audit", "show", "--data-dir", w.DataDir, id[1])
	if err != nil {
		t.Fatalf("audit show: %v %s", err, out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec["dev"] != true || rec["outcome"] != "allow" {
		t.Errorf("evidence of a dev-issuer call must say dev: %v\n%s", err, out)
	}
}

// TestDevIssuerNotTrustedByDefault: a development token is refused unless
// writ runs with --dev.
func TestDevIssuerNotTrustedByDefault(t *testing.T) {
	bin := writtest.Build(t)
	w := writtest.Start(t, bin, writtest.Options{})
	tok, err := w.Run(t, "dev", "token", "--user", "alice", "--agent", "bot", "--data-dir", w.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Run(t, "check", "--addr", w.GRPC, "--tool", "search_issues", "--token", strings.TrimSpace(tok))
	if err == nil || !strings.Contains(out, "status: 401") || !strings.Contains(out, `error_description="the token's issuer is not trusted"`) {
		t.Fatalf("a dev token was not refused without --dev: %v\n%s", err, out)
	}
}

func TestPolicyTestCommand(t *testing.T) {
	bin := writtest.Build(t)
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("authz.rego", "package writ.authz\n\ndecision := {\"allow\": input.mcp.name == \"search\"}\n")
	write("authz_test.rego", "package writ.authz_test\n\nimport data.writ.authz\n\n"+
		"test_search if authz.decision.allow with input as {\"mcp\": {\"name\": \"search\"}}\n\n"+
		"test_delete_denied if not authz.decision.allow with input as {\"mcp\": {\"name\": \"delete\"}}\n")
	w := &writtest.Writ{Bin: bin}
	out, err := w.Run(t, "policy", "test", dir)
	if err != nil || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("policy test: %v\n%s", err, out)
	}
	write("more_test.rego", "package writ.authz_test\n\nimport data.writ.authz\n\ntest_wrong if authz.decision.allow with input as {\"mcp\": {\"name\": \"delete\"}}\n")
	out, err = w.Run(t, "policy", "test", dir)
	if err == nil || !strings.Contains(out, "2 passed, 1 failed") {
		t.Fatalf("a failing Rego test must fail the command: %v\n%s", err, out)
	}
	out, err = w.Run(t, "policy", "test", filepath.Join(dir, "missing"))
	if err == nil {
		t.Fatalf("a missing directory must fail: %s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	bin := writtest.Build(t)
	w := &writtest.Writ{Bin: bin}
	for _, args := range [][]string{{}, {"bogus"}, {"serve", "extra"}, {"dev", "token"}, {"check"}, {"audit"}, {"keys"}} {
		out, err := w.Run(t, args...)
		if err == nil || !strings.Contains(out, "Usage:") {
			t.Errorf("writ %v: want a usage error, got %v\n%s", args, err, out)
		}
	}
	out, err := w.Run(t, "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(out, "config:") {
		t.Errorf("missing config: %v %s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "writ.yaml")
	os.WriteFile(cfg, []byte("listen:\n  grcp: 127.0.0.1:0\n"), 0o600)
	out, err = w.Run(t, "serve", "--config", cfg)
	if err == nil || !strings.Contains(out, `writ: config: unknown key "grcp" (line 2)`) {
		t.Errorf("unknown key: %v %s", err, out)
	}
}
