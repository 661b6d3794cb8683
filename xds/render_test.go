package xds_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/writ-dev/writ/xds"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func buildFile(t testing.TB, name string) []xds.NodeConfig {
	t.Helper()
	m, err := xds.LoadMesh(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := xds.Build(m)
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func TestRenderGolden(t *testing.T) {
	for _, mesh := range []string{"mcp-sidecar", "grpc-client", "full"} {
		for _, format := range []string{"yaml", "json"} {
			t.Run(mesh+"."+format, func(t *testing.T) {
				nodes := buildFile(t, mesh+".yaml")
				var out bytes.Buffer
				if err := xds.Render(nodes, format, &out); err != nil {
					t.Fatal(err)
				}
				golden(t, mesh+".golden."+format, out.Bytes())
			})
		}
	}
}

// TestRenderFormatsAgree proves the YAML and JSON renderings carry the same
// data and that every resource names its @type.
func TestRenderFormatsAgree(t *testing.T) {
	nodes := buildFile(t, "full.yaml")
	var y, j bytes.Buffer
	if err := xds.Render(nodes, "yaml", &y); err != nil {
		t.Fatal(err)
	}
	if err := xds.Render(nodes, "json", &j); err != nil {
		t.Fatal(err)
	}
	var fromJSON []any
	if err := json.Unmarshal(j.Bytes(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	var fromYAML []any
	dec := yaml.NewDecoder(&y)
	for {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		fromYAML = append(fromYAML, doc)
	}
	// Round-trip the YAML documents through JSON so the types match.
	raw, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var yamlAsJSON []any
	if err := json.Unmarshal(raw, &yamlAsJSON); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromJSON, yamlAsJSON); diff != "" {
		t.Errorf("yaml and json renderings differ:\n%s", diff)
	}
	if len(fromJSON) != len(nodes) {
		t.Fatalf("rendered %d nodes, built %d", len(fromJSON), len(nodes))
	}
	for i, n := range fromJSON {
		node := n.(map[string]any)
		if node["node"] != nodes[i].Node || node["version"] != nodes[i].Version() {
			t.Errorf("node %d: got node %v version %v, want %s %s", i, node["node"], node["version"], nodes[i].Node, nodes[i].Version())
		}
		for _, key := range []string{"listeners", "routes", "clusters", "endpoints"} {
			for _, r := range asSlice(node[key]) {
				if typ, _ := r.(map[string]any)["@type"].(string); !strings.HasPrefix(typ, "type.googleapis.com/envoy.config.") {
					t.Errorf("node %s %s: resource without @type: %v", nodes[i].Node, key, typ)
				}
			}
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestRenderUnknownFormat(t *testing.T) {
	var out bytes.Buffer
	err := xds.Render(buildFile(t, "grpc-client.yaml"), "toml", &out)
	if err == nil || err.Error() != `xds: render: unknown format "toml" (want yaml or json)` {
		t.Fatalf("got %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes for an unknown format", out.Len())
	}
}
