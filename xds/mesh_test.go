package xds_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/xds"
)

// sidecarMesh is a valid one-sidecar mesh; tests replace parts of it.
const sidecarMesh = `
writ:
  address: 127.0.0.1:9191
sidecars:
  - node: n1
    listen: 0.0.0.0:10000
    upstreams:
      - name: app
        address: 127.0.0.1:8081
    routes:
      - name: mcp
        match: {prefix: /mcp}
        upstream: app
        mcp: true
`

func TestParseMeshValid(t *testing.T) {
	m, err := xds.ParseMesh([]byte(sidecarMesh))
	if err != nil {
		t.Fatal(err)
	}
	want := &xds.Mesh{
		Writ: xds.Writ{Address: "127.0.0.1:9191"},
		Sidecars: []xds.Sidecar{{
			Node:      "n1",
			Listen:    "0.0.0.0:10000",
			Upstreams: []xds.Upstream{{Name: "app", Address: "127.0.0.1:8081"}},
			Routes:    []xds.Route{{Name: "mcp", Match: xds.Match{Prefix: "/mcp"}, Upstream: "app", MCP: true}},
		}},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("mesh (-want +got):\n%s", diff)
	}
}

func TestLoadMeshFull(t *testing.T) {
	m, err := xds.LoadMesh(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Writ.Timeout != time.Second {
		t.Errorf("writ.timeout = %s, want 1s", m.Writ.Timeout)
	}
	if m.Writ.TLS == nil || m.Writ.TLS.ServerName != "writ.internal" || m.Writ.TLS.KeyFile != "/etc/envoy/tls.key" {
		t.Errorf("writ.tls = %+v", m.Writ.TLS)
	}
	if got := m.Sidecars[0].Routes[1].MaxRequestBytes; got != 4194304 {
		t.Errorf("max_request_bytes = %d", got)
	}
	if got := m.GRPCServices[1].Upstream.Address; got != "[::1]:50052" {
		t.Errorf("grpc_services[1].upstream.address = %q", got)
	}
}

func TestLoadMeshMissingFile(t *testing.T) {
	_, err := xds.LoadMesh(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

// TestParseMeshInvalid lists every kind of bad mesh with its exact error.
func TestParseMeshInvalid(t *testing.T) {
	tests := []struct {
		name string
		mesh string
		want string
	}{
		{"empty file", ``, `xds: invalid mesh: empty file`},
		{"empty mesh", `writ: {address: 127.0.0.1:9191}`,
			`xds: invalid mesh: sidecars: a mesh needs at least one sidecar or grpc service`},
		{"unknown top-level key", sidecarMesh + "extra: 1\n",
			`xds: invalid mesh: line 15: unknown key "extra"`},
		{"unknown nested key", strings.Replace(sidecarMesh, "mcp: true", "mcp: true\n        retries: 3", 1),
			`xds: invalid mesh: line 15: unknown key "retries"`},
		{"wrong type", strings.Replace(sidecarMesh, "mcp: true", "mcp: yes please", 1),
			"xds: invalid mesh: line 14: cannot unmarshal !!str `yes please` into bool"},
		{"bad duration", strings.Replace(sidecarMesh, "address: 127.0.0.1:9191", "address: 127.0.0.1:9191\n  timeout: soon", 1),
			"xds: invalid mesh: line 4: cannot unmarshal !!str `soon` into time.Duration"},
		{"two documents", sidecarMesh + "---\nwrit: {}\n", `xds: invalid mesh: more than one YAML document`},
		{"not yaml", "writ: [", `xds: invalid mesh: line 1: did not find expected node content`},
		{"missing writ address", strings.Replace(sidecarMesh, "address: 127.0.0.1:9191", "timeout: 1s", 1),
			`xds: invalid mesh: writ.address: required`},
		{"writ address without port", strings.Replace(sidecarMesh, "127.0.0.1:9191", "127.0.0.1", 1),
			`xds: invalid mesh: writ.address: want host:port, got "127.0.0.1"`},
		{"writ bad port", strings.Replace(sidecarMesh, "127.0.0.1:9191", "127.0.0.1:0", 1),
			`xds: invalid mesh: writ.address: port must be 1-65535, got "0"`},
		{"writ bad host", strings.Replace(sidecarMesh, "127.0.0.1:9191", "bad_host!:9191", 1),
			`xds: invalid mesh: writ.address: host must be an IP address or a DNS name, got "bad_host!"`},
		{"negative timeout", strings.Replace(sidecarMesh, "address: 127.0.0.1:9191", "address: 127.0.0.1:9191\n  timeout: -1s", 1),
			`xds: invalid mesh: writ.timeout: must be positive, got -1s`},
		{"tls without ca", strings.Replace(sidecarMesh, "address: 127.0.0.1:9191", "address: 127.0.0.1:9191\n  tls: {cert_file: c.pem, key_file: k.pem}", 1),
			`xds: invalid mesh: writ.tls.ca_file: required`},
		{"tls cert without key", strings.Replace(sidecarMesh, "address: 127.0.0.1:9191", "address: 127.0.0.1:9191\n  tls: {ca_file: ca.pem, cert_file: c.pem}", 1),
			`xds: invalid mesh: writ.tls: cert_file and key_file go together`},
		{"unknown sidecar key", strings.Replace(sidecarMesh, "node: n1", "node: n1\n    backlog: 1", 1),
			`xds: invalid mesh: line 6: unknown key "backlog"`},
		{"missing node", strings.Replace(sidecarMesh, "- node: n1\n    listen", "- listen", 1),
			`xds: invalid mesh: sidecars[0].node: required (or cluster)`},
		{"node and cluster", strings.Replace(sidecarMesh, "node: n1", "node: n1\n    cluster: c1", 1),
			`xds: invalid mesh: sidecars[0]: node and cluster are exclusive`},
		{"node looks like a cluster", strings.Replace(sidecarMesh, "node: n1", "node: cluster:c1", 1),
			`xds: invalid mesh: sidecars[0].node: must not start with "cluster:" (use the cluster key)`},
		{"duplicate sidecar node", sidecarMesh + `  - node: n1
    listen: 0.0.0.0:10001
    upstreams: [{name: app, address: 127.0.0.1:8081}]
    routes: [{name: all, match: {prefix: /}, upstream: app}]
`, `xds: invalid mesh: sidecars[1]: node "n1" already has a sidecar (sidecars[0])`},
		{"missing listen", strings.Replace(sidecarMesh, "    listen: 0.0.0.0:10000\n", "", 1),
			`xds: invalid mesh: sidecars[0].listen: required`},
		{"listen on a name", strings.Replace(sidecarMesh, "0.0.0.0:10000", "localhost:10000", 1),
			`xds: invalid mesh: sidecars[0].listen: host must be an IP address, got "localhost"`},
		{"duplicate domain", strings.Replace(sidecarMesh, "listen: 0.0.0.0:10000", "listen: 0.0.0.0:10000\n    domains: [a, a]", 1),
			`xds: invalid mesh: sidecars[0].domains[1]: duplicate domain "a"`},
		{"no upstreams", strings.Replace(sidecarMesh, `    upstreams:
      - name: app
        address: 127.0.0.1:8081
`, "", 1), `xds: invalid mesh: sidecars[0].upstreams: at least one upstream; sidecars[0].routes[0].upstream: unknown upstream "app"`},
		{"duplicate upstream", strings.Replace(sidecarMesh, "    routes:", "      - {name: app, address: 127.0.0.1:8082}\n    routes:", 1),
			`xds: invalid mesh: sidecars[0].upstreams[1].name: duplicate upstream "app"`},
		{"reserved upstream name", strings.Replace(sidecarMesh, "    routes:", "      - {name: writ, address: 127.0.0.1:8082}\n    routes:", 1),
			`xds: invalid mesh: sidecars[0].upstreams[1].name: "writ" is reserved for writ's cluster`},
		{"bad upstream name", strings.Replace(sidecarMesh, "    routes:", "      - {name: 'a b', address: 127.0.0.1:8082}\n    routes:", 1),
			`xds: invalid mesh: sidecars[0].upstreams[1].name: must match ^[A-Za-z0-9_.-]+$`},
		{"upstream bad address", strings.Replace(sidecarMesh, "127.0.0.1:8081", "127.0.0.1:http", 1),
			`xds: invalid mesh: sidecars[0].upstreams[0].address: port must be 1-65535, got "http"`},
		{"upstream unknown protocol", strings.Replace(sidecarMesh, "address: 127.0.0.1:8081", "address: 127.0.0.1:8081\n        protocol: http3", 1),
			`xds: invalid mesh: sidecars[0].upstreams[0].protocol: must be http1, http2 or grpc, got "http3"`},
		{"no routes", strings.Split(sidecarMesh, "    routes:")[0],
			`xds: invalid mesh: sidecars[0].routes: at least one route`},
		{"duplicate route", sidecarMesh + "      - {name: mcp, match: {prefix: /}, upstream: app}\n",
			`xds: invalid mesh: sidecars[0].routes[1].name: duplicate route "mcp"`},
		{"route without name", sidecarMesh + "      - {match: {prefix: /}, upstream: app}\n",
			`xds: invalid mesh: sidecars[0].routes[1].name: required`},
		{"unknown upstream", strings.Replace(sidecarMesh, "upstream: app", "upstream: nowhere", 1),
			`xds: invalid mesh: sidecars[0].routes[0].upstream: unknown upstream "nowhere"`},
		{"bad prefix", sidecarMesh + "      - {name: a, match: {prefix: /a}, upstream: app}\n      - {name: b, match: {prefix: b}, upstream: app}\n",
			`xds: invalid mesh: sidecars[0].routes[2].match.prefix: must start with "/"`},
		{"bad path", strings.Replace(sidecarMesh, "{prefix: /mcp}", "{path: mcp}", 1),
			`xds: invalid mesh: sidecars[0].routes[0].match.path: must start with "/"`},
		{"prefix and path", strings.Replace(sidecarMesh, "{prefix: /mcp}", "{prefix: /mcp, path: /mcp}", 1),
			`xds: invalid mesh: sidecars[0].routes[0].match: prefix and path are exclusive`},
		{"no match", strings.Replace(sidecarMesh, "match: {prefix: /mcp}", "match: {}", 1),
			`xds: invalid mesh: sidecars[0].routes[0].match: one of prefix and path is required`},
		{"max size without mcp", strings.Replace(sidecarMesh, "mcp: true", "max_request_bytes: 4096", 1),
			`xds: invalid mesh: sidecars[0].routes[0].max_request_bytes: only for an mcp route`},
		{"max size too large", strings.Replace(sidecarMesh, "mcp: true", "mcp: true\n        max_request_bytes: 67108865", 1),
			`xds: invalid mesh: sidecars[0].routes[0].max_request_bytes: must be at most 67108864, got 67108865`},
		{"negative max size", strings.Replace(sidecarMesh, "mcp: true", "mcp: true\n        max_request_bytes: -1", 1),
			"xds: invalid mesh: line 15: cannot unmarshal !!int `-1` into uint32"},
		{"skip on mcp", strings.Replace(sidecarMesh, "mcp: true", "mcp: true\n        authorization: skip", 1),
			`xds: invalid mesh: sidecars[0].routes[0].authorization: skip cannot be used on an mcp route`},
		{"skip with context", strings.Replace(sidecarMesh, "mcp: true", "authorization: skip\n        context: {tenant: t}", 1),
			`xds: invalid mesh: sidecars[0].routes[0].context: a route with authorization: skip has no context`},
		{"unknown authorization", strings.Replace(sidecarMesh, "mcp: true", "authorization: maybe", 1),
			`xds: invalid mesh: sidecars[0].routes[0].authorization: must be check or skip, got "maybe"`},
		{"unknown token profile", strings.Replace(sidecarMesh, "mcp: true", "context: {token_profile: id_token}", 1),
			`xds: invalid mesh: sidecars[0].routes[0].context.token_profile: must be access_token or txn_token, got "id_token"`},
		{"unknown context key", strings.Replace(sidecarMesh, "mcp: true", "context: {owner: me}", 1),
			`xds: invalid mesh: line 14: unknown key "owner"`},
		{"grpc service without name", "grpc_services: [{node: g, upstream: {address: 127.0.0.1:1}}]",
			`xds: invalid mesh: grpc_services[0].name: required`},
		{"grpc service bad name", "grpc_services: [{name: 'xds:///echo', node: g, upstream: {address: 127.0.0.1:1}}]",
			`xds: invalid mesh: grpc_services[0].name: must be the host of an xds:/// target (^[A-Za-z0-9_.-]+(:[0-9]+)?$), got "xds:///echo"`},
		{"grpc service reserved name", "grpc_services: [{name: ingress, node: g, upstream: {address: 127.0.0.1:1}}]",
			`xds: invalid mesh: grpc_services[0].name: "ingress" is reserved`},
		{"grpc service duplicate", "grpc_services: [{name: e, node: g, upstream: {address: 127.0.0.1:1}}, {name: e, node: g, upstream: {address: 127.0.0.1:2}}]",
			`xds: invalid mesh: grpc_services[1].name: "e" is already used on node "g" by grpc_services[0]`},
		{"grpc service clashes with upstream", sidecarMesh + "grpc_services: [{name: app, node: n1, upstream: {address: 127.0.0.1:1}}]",
			`xds: invalid mesh: grpc_services[0].name: "app" is already used on node "n1" by sidecars[0].upstreams[0]`},
		{"grpc service on a name", "grpc_services: [{name: e, cluster: c, upstream: {address: 'echo:50051'}}]",
			`xds: invalid mesh: grpc_services[0].upstream.address: host must be an IP address, got "echo"`},
		{"grpc service without node", "grpc_services: [{name: e, upstream: {address: 127.0.0.1:1}}]",
			`xds: invalid mesh: grpc_services[0].node: required (or cluster)`},
		{"several problems", `
writ: {address: 127.0.0.1:9191, timeout: -5ms}
sidecars:
  - node: n1
    listen: 0.0.0.0:10000
    upstreams: [{name: app, address: 127.0.0.1:8081}]
    routes: [{name: r, match: {prefix: x}, upstream: app2}]
`, `xds: invalid mesh: writ.timeout: must be positive, got -5ms; sidecars[0].routes[0].match.prefix: must start with "/"; sidecars[0].routes[0].upstream: unknown upstream "app2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := xds.ParseMesh([]byte(tt.mesh))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !errors.Is(err, xds.ErrInvalidMesh) {
				t.Errorf("error %v does not wrap ErrInvalidMesh", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if m != nil {
				t.Errorf("returned a mesh with the error")
			}
		})
	}
}

// TestBuildValidates proves Build refuses a mesh built in code that
// Validate would refuse.
func TestBuildValidates(t *testing.T) {
	_, err := xds.Build(&xds.Mesh{GRPCServices: []xds.GRPCService{{Name: "e", Node: "g"}}})
	if !errors.Is(err, xds.ErrInvalidMesh) || !strings.Contains(err.Error(), "grpc_services[0].upstream.address: required") {
		t.Fatalf("got %v", err)
	}
}

// FuzzParseMesh feeds the parser arbitrary bytes, seeded with the testdata
// meshes: it must never panic, and whatever it accepts must build into
// snapshots that pass every check.
func FuzzParseMesh(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, path := range seeds {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(sidecarMesh))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := xds.ParseMesh(raw)
		if err != nil {
			if !errors.Is(err, xds.ErrInvalidMesh) {
				t.Fatalf("error %v does not wrap ErrInvalidMesh", err)
			}
			return
		}
		nodes, err := xds.Build(m)
		if err != nil {
			t.Fatalf("valid mesh did not build: %v", err)
		}
		for _, n := range nodes {
			if _, err := n.Snapshot(); err != nil {
				t.Fatalf("valid mesh gave a bad snapshot: %v", err)
			}
		}
	})
}
