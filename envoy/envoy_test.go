package envoy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthz "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	// The extension types the files name in @type.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

var files = []string{"sidecar-ads.yaml", "static.yaml"}

// load decodes a YAML bootstrap strictly: YAML → JSON → protojson, which
// rejects unknown fields and unknown @type.
func load(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := decode(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func decode(path string) (*bootstrapv3.Bootstrap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

func TestBootstrapsValidate(t *testing.T) {
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			if err := load(t, name).ValidateAll(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

func TestSidecarADS(t *testing.T) {
	b := load(t, "sidecar-ads.yaml")
	dyn := b.GetDynamicResources()
	if dyn.GetLdsConfig().GetAds() == nil || dyn.GetCdsConfig().GetAds() == nil {
		t.Errorf("LDS and CDS must come over ADS: %v", dyn)
	}
	if c := dyn.GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName(); c != "xds_cluster" {
		t.Errorf("ADS cluster %q", c)
	}
	xds := b.GetStaticResources().GetClusters()[0]
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if xds.GetName() != "xds_cluster" || sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 18000 || xds.GetTypedExtensionProtocolOptions() == nil {
		t.Errorf("xds_cluster = %v", xds)
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9901 {
		t.Errorf("admin = %v", a)
	}
	if len(b.GetStaticResources().GetListeners()) != 0 {
		t.Error("the ADS sidecar must not define listeners itself")
	}
}

func TestStaticExample(t *testing.T) {
	b := load(t, "static.yaml")
	var m hcm.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
		t.Fatal(err)
	}
	filters := m.GetHttpFilters()
	if len(filters) != 2 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http_filters = %v", filters)
	}
	var ea extauthz.ExtAuthz
	if err := filters[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatal(err)
	}
	if ea.GetFailureModeAllow() || ea.GetStatusOnError().GetCode() != 503 || !ea.GetValidateMutations() ||
		ea.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "writ" || ea.GetWithRequestBody().GetMaxRequestBytes() != 1<<20 {
		t.Errorf("ext_authz = %v", &ea)
	}
	routes := m.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	per := func(i int) *extauthz.ExtAuthzPerRoute {
		var p extauthz.ExtAuthzPerRoute
		if err := routes[i].GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(&p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	if !per(0).GetDisabled() || routes[0].GetMatch().GetPath() != "/healthz" {
		t.Errorf("health route = %v", routes[0])
	}
	cs := per(1).GetCheckSettings()
	if cs.GetContextExtensions()["mcp"] != "true" || cs.GetContextExtensions()["resource"] != "mcp://tickets" || !cs.GetWithRequestBody().GetPackAsBytes() {
		t.Errorf("mcp route = %v", cs)
	}
	clusters := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = true
	}
	if !clusters["writ"] || !clusters["tickets"] {
		t.Errorf("clusters = %v", clusters)
	}
}

// TestLoadIsStrict proves a misspelt field fails the load rather than
// being dropped.
func TestLoadIsStrict(t *testing.T) {
	raw, err := os.ReadFile("static.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "typo.yaml")
	typo := strings.Replace(string(raw), "failure_mode_allow: false", "failure_mode_alow: false", 1)
	if err := os.WriteFile(bad, []byte(typo), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "failure_mode_alow") {
		t.Fatalf("got %v, want an error naming failure_mode_alow", err)
	}
}

// TestEnvoyValidate runs Envoy's own validation on each file when an envoy
// binary is available.
func TestEnvoyValidate(t *testing.T) {
	bin := os.Getenv("ENVOY")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("envoy"); err != nil {
			t.Skip("no envoy binary: not on PATH and $ENVOY unset; Envoy has no package this environment can install")
		}
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			path, err := filepath.Abs(name)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--mode", "validate", "-c", path, "--log-level", "warn"}
			if name == "sidecar-ads.yaml" {
				args = append(args, "--service-node", "sidecar-tickets")
			}
			cmd := exec.CommandContext(t.Context(), bin, args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("envoy --mode validate %s: %v\n%s", name, err, out)
			}
		})
	}
}
