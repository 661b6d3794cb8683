package policies_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/policies"
)

// copyDir copies a testdata folder into a fresh temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		bs, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), bs, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func delegatedCall(tool string) *policies.Input {
	return &policies.Input{
		Identity: &policies.Identity{User: "alice", Agent: "research-bot", Tenant: "acme", Actors: []string{"research-bot"}},
		MCP:      &policies.MCP{Method: "tools/call", Name: tool, Arguments: map[string]any{"q": "bug"}},
	}
}

func TestLoadDir(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		dir     string
		wantErr error
		// wantText must appear in the error: the file and line.
		wantText string
	}{
		{dir: "testdata/good"},
		{dir: "testdata/envoy_bool"},
		{dir: "testdata/envoy_object"},
		{dir: "testdata/syntax_error", wantErr: policies.ErrCompile,
			wantText: "testdata/syntax_error/authz.rego:7: rego_parse_error: unexpected eof token"},
		{dir: "testdata/v0", wantErr: policies.ErrCompile,
			wantText: "testdata/v0/authz.rego:5: rego_parse_error: `if` keyword is required before rule body (testdata/v0/authz.rego is Rego v0 and writ accepts Rego v1 only"},
		{dir: "testdata/no_entrypoint", wantErr: policies.ErrNoEntrypoint,
			wantText: "policy defines neither data.writ.authz.decision nor data.envoy.authz.allow (in testdata/no_entrypoint)"},
		{dir: "testdata/bad_data_json", wantErr: policies.ErrCompile,
			wantText: "testdata/bad_data_json/data.json:3: invalid JSON"},
		{dir: "testdata/bad_data_yaml", wantErr: policies.ErrCompile,
			wantText: "testdata/bad_data_yaml/data.yaml:2: invalid YAML: found a tab character"},
		{dir: "testdata/data_conflict", wantErr: policies.ErrCompile,
			wantText: "data.settings.audience is already defined by another data file"},
		{dir: "testdata/compile_error", wantErr: policies.ErrCompile,
			wantText: "testdata/compile_error/authz.rego:4: rego_unsafe_var_error: var x is unsafe"},
		{dir: "testdata/missing", wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.dir), func(t *testing.T) {
			e := policies.NewEngine(policies.Options{})
			before := e.Revision()
			rev, err := e.LoadDir(ctx, tt.dir)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadDir: %v", err)
				}
				if !strings.HasPrefix(rev, "sha256:") || len(rev) != len("sha256:")+16 {
					t.Errorf("revision = %q, want sha256: and 16 hex digits", rev)
				}
				if got := e.Revision(); got != rev {
					t.Errorf("Revision() = %q, want %q", got, rev)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadDir error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("LoadDir error = %q, want it to contain %q", err, tt.wantText)
			}
			if rev != "" {
				t.Errorf("revision on failure = %q, want empty", rev)
			}
			if got := e.Revision(); got != before {
				t.Errorf("Revision() after a failed load = %q, want the previous %q", got, before)
			}
		})
	}
}

func TestLoadDirData(t *testing.T) {
	ctx := t.Context()
	e := policies.NewEngine(policies.Options{})
	if _, err := e.LoadDir(ctx, "testdata/good"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tenant string
		tool   string
		want   policies.Decision
	}{
		// settings come from data.json at the root.
		{name: "listed tool", tenant: "globex", tool: "search_issues", want: policies.Decision{
			Allow: true, Reason: "listed tool", Scopes: []string{"tools:call"}, Audience: "https://tickets.internal"}},
		{name: "unlisted tool", tenant: "globex", tool: "drop_table", want: policies.Decision{Reason: "not listed"}},
		// tenants/acme/data.yaml lands at data.tenants.acme.
		{name: "suspended tenant", tenant: "acme", tool: "search_issues", want: policies.Decision{Reason: "tenant is suspended"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := delegatedCall(tt.tool)
			in.Identity.Tenant = tt.tenant
			got, _, err := e.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailedLoadKeepsServing(t *testing.T) {
	ctx := t.Context()
	e := policies.NewEngine(policies.Options{})
	good, err := e.LoadDir(ctx, "testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadDir(ctx, "testdata/syntax_error"); !errors.Is(err, policies.ErrCompile) {
		t.Fatalf("LoadDir(syntax_error) = %v, want ErrCompile", err)
	}
	if _, err := e.LoadBundle(ctx, policies.Bundle{Modules: map[string]string{"x.rego": "package x\n"}}); !errors.Is(err, policies.ErrNoEntrypoint) {
		t.Fatalf("LoadBundle(no entrypoint) = %v, want ErrNoEntrypoint", err)
	}
	in := delegatedCall("search_issues")
	in.Identity.Tenant = "globex"
	d, rev, err := e.Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if rev != good {
		t.Errorf("decided by %q, want the last good revision %q", rev, good)
	}
	if !d.Allow || d.Reason != "listed tool" {
		t.Errorf("decision = %+v, want the good policy's allow", d)
	}
}

func TestRevision(t *testing.T) {
	ctx := t.Context()
	dir := copyDir(t, "testdata/good")
	e := policies.NewEngine(policies.Options{})
	defaultRev := e.Revision()
	first, err := e.LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if first == defaultRev {
		t.Fatalf("loading a policy did not change the revision from the default %q", defaultRev)
	}

	// Touching every file changes nothing.
	later := time.Now().Add(time.Hour)
	err = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, later, later)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := e.LoadDir(ctx, dir); err != nil || rev != first {
		t.Fatalf("after touching files: revision %q, %v; want %q", rev, err, first)
	}

	// The same content from memory has the same revision.
	b, err := policies.ReadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := policies.NewEngine(policies.Options{}).LoadBundle(ctx, b); err != nil || rev != first {
		t.Fatalf("LoadBundle(ReadBundle(dir)) = %q, %v; want %q", rev, err, first)
	}

	// Changing a policy's content, a data file, or a file's name does.
	seen := map[string]string{first: "original"}
	steps := []struct {
		name string
		do   func()
	}{
		{"edit policy", func() {
			writeFile(t, filepath.Join(dir, "authz.rego"), strings.Replace(b.Modules["authz.rego"], "not listed", "not on the list", 1))
		}},
		{"edit data", func() {
			writeFile(t, filepath.Join(dir, "tenants/acme/data.yaml"), "suspended: false\n")
		}},
		{"rename policy", func() {
			if err := os.Rename(filepath.Join(dir, "authz.rego"), filepath.Join(dir, "main.rego")); err != nil {
				t.Fatal(err)
			}
		}},
		{"add a test file (not part of the revision)", func() {
			writeFile(t, filepath.Join(dir, "main_test.rego"), "package writ.authz_test\n\ntest_x if true\n")
		}},
	}
	prev := first
	for _, step := range steps {
		step.do()
		rev, err := e.LoadDir(ctx, dir)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if strings.HasPrefix(step.name, "add a test file") {
			if rev != prev {
				t.Errorf("%s: revision changed from %q to %q", step.name, prev, rev)
			}
			continue
		}
		if other, ok := seen[rev]; ok {
			t.Errorf("%s: revision %q is the same as after %q", step.name, rev, other)
		}
		seen[rev] = step.name
		prev = rev
	}
}

func TestDefaultBundle(t *testing.T) {
	b := policies.DefaultBundle()
	if _, ok := b.Modules["authz.rego"]; !ok || len(b.Modules) != 1 {
		t.Fatalf("DefaultBundle modules = %v, want only authz.rego (no tests)", keys(b.Modules))
	}
	e := policies.NewEngine(policies.Options{})
	rev, err := policies.NewEngine(policies.Options{}).LoadBundle(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if rev != e.Revision() {
		t.Errorf("a new engine serves %q, want the default bundle's %q", e.Revision(), rev)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
