package xds_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/xds"
)

func TestBundleValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    xds.Bundle
		want string // "" means valid
	}{
		{"valid", xds.Bundle{Modules: map[string]string{"authz.rego": "package a", "sub/x.rego": "package b"}, Data: []byte(`{"a":1}`)}, ""},
		{"empty", xds.Bundle{}, ""},
		{"absolute name", xds.Bundle{Modules: map[string]string{"/etc/a.rego": ""}}, `module name "/etc/a.rego" is not a clean relative slash path`},
		{"dot-dot", xds.Bundle{Modules: map[string]string{"../a.rego": ""}}, `module name "../a.rego" leaves the policy directory`},
		{"unclean", xds.Bundle{Modules: map[string]string{"a/./b.rego": ""}}, `module name "a/./b.rego" is not a clean relative slash path`},
		{"backslash", xds.Bundle{Modules: map[string]string{`a\b.rego`: ""}}, `is not a clean relative slash path`},
		{"not rego", xds.Bundle{Modules: map[string]string{"a.json": "{}"}}, `module name "a.json" does not end in .rego`},
		{"empty name", xds.Bundle{Modules: map[string]string{"": ""}}, `is empty, too long or not UTF-8`},
		{"long name", xds.Bundle{Modules: map[string]string{strings.Repeat("a", 600) + ".rego": ""}}, `is empty, too long or not UTF-8`},
		{"binary source", xds.Bundle{Modules: map[string]string{"a.rego": "\xff"}}, `module "a.rego" is not UTF-8`},
		{"data array", xds.Bundle{Data: []byte(`[1]`)}, "data is not a JSON object"},
		{"data null", xds.Bundle{Data: []byte(`null`)}, "data is not a JSON object"},
		{"too big", xds.Bundle{Modules: map[string]string{"a.rego": strings.Repeat("x", xds.MaxBundleBytes)}}, "more than 16777216"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, xds.ErrBundle) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want ErrBundle containing %q", err, tc.want)
			}
		})
	}
}

func TestBundleRevision(t *testing.T) {
	a := xds.BundleRevision(map[string]string{"a.rego": "package a"}, nil)
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+16 {
		t.Errorf("revision %q, want sha256: and 16 hex digits", a)
	}
	if b := xds.BundleRevision(map[string]string{"a.rego": "package a"}, []byte("{}")); b != a {
		t.Errorf("empty data changed the revision: %q vs %q", b, a)
	}
	for name, other := range map[string]string{
		"source": xds.BundleRevision(map[string]string{"a.rego": "package b"}, nil),
		"name":   xds.BundleRevision(map[string]string{"b.rego": "package a"}, nil),
		"data":   xds.BundleRevision(map[string]string{"a.rego": "package a"}, []byte(`{"x":1}`)),
	} {
		if other == a {
			t.Errorf("a different %s gives the same revision", name)
		}
	}
}
