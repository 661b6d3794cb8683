package xds_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthz "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/writ-dev/writ/xds"
)

// names lists the xDS names of a node's resources of one type, in order.
func names(n xds.NodeConfig, typeURL string) []string {
	var out []string
	for _, r := range n.Resources[typeURL] {
		switch v := r.(type) {
		case *endpoint.ClusterLoadAssignment:
			out = append(out, v.GetClusterName())
		case interface{ GetName() string }:
			out = append(out, v.GetName())
		}
	}
	return out
}

func nodeByID(t *testing.T, nodes []xds.NodeConfig, id string) xds.NodeConfig {
	t.Helper()
	for _, n := range nodes {
		if n.Node == id {
			return n
		}
	}
	t.Fatalf("no node %q", id)
	return xds.NodeConfig{}
}

func TestBuildNodes(t *testing.T) {
	nodes := buildFile(t, "full.yaml")
	type shape struct{ Node, Listeners, Routes, Clusters, Endpoints []string }
	var got []shape
	for _, n := range nodes {
		got = append(got, shape{
			Node:      []string{n.Node},
			Listeners: names(n, resource.ListenerType),
			Routes:    names(n, resource.RouteType),
			Clusters:  names(n, resource.ClusterType),
			Endpoints: names(n, resource.EndpointType),
		})
	}
	want := []shape{{
		Node:      []string{"cluster:tools"},
		Listeners: []string{"ingress", "greeter.test:8443"},
		Routes:    []string{"ingress", "greeter.test:8443"},
		// search is a DNS name: STRICT_DNS, so no endpoints resource.
		Clusters:  []string{"writ", "search", "files", "greeter.test:8443"},
		Endpoints: []string{"files", "greeter.test:8443"},
	}, {
		Node:      []string{"sidecar-2"},
		Listeners: []string{"ingress", "echo.test"},
		Routes:    []string{"ingress", "echo.test"},
		Clusters:  []string{"writ", "app", "echo.test"},
		Endpoints: []string{"app", "echo.test"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
}

// TestSnapshotAllTestdata builds every testdata mesh into snapshots that
// pass ValidateAll, Consistent and writ's reference check.
func TestSnapshotAllTestdata(t *testing.T) {
	for _, mesh := range []string{"mcp-sidecar.yaml", "grpc-client.yaml", "full.yaml"} {
		for _, n := range buildFile(t, mesh) {
			snap, err := n.Snapshot()
			if err != nil {
				t.Fatalf("%s %s: %v", mesh, n.Node, err)
			}
			for typeURL, rs := range n.Resources {
				if got := snap.GetVersion(typeURL); got != n.Version() {
					t.Errorf("%s %s %s: version %q, want %q", mesh, n.Node, typeURL, got, n.Version())
				}
				if got := len(snap.GetResources(typeURL)); got != len(rs) {
					t.Errorf("%s %s %s: %d resources in snapshot, built %d", mesh, n.Node, typeURL, got, len(rs))
				}
			}
		}
	}
}

func unpack[M proto.Message](t *testing.T, a *anypb.Any, m M) M {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func managerOf(t *testing.T, l *listener.Listener) *hcm.HttpConnectionManager {
	t.Helper()
	if a := l.GetApiListener().GetApiListener(); a != nil {
		return unpack(t, a, &hcm.HttpConnectionManager{})
	}
	return unpack(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcm.HttpConnectionManager{})
}

func TestExtAuthzFilter(t *testing.T) {
	tests := []struct {
		mesh, node string
		want       *extauthz.ExtAuthz
	}{{
		mesh: "mcp-sidecar.yaml", node: "sidecar-tickets",
		want: &extauthz.ExtAuthz{
			Services: &extauthz.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
				TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: "writ"}},
				Timeout:         durationpb.New(250 * time.Millisecond),
			}},
			TransportApiVersion: core.ApiVersion_V3,
			StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			ValidateMutations:   true,
			WithRequestBody:     &extauthz.BufferSettings{MaxRequestBytes: 1 << 20, AllowPartialMessage: true, PackAsBytes: true},
		},
	}, {
		// TLS to writ: the peer certificate goes to writ; buffering is
		// sized for the largest MCP route (files-mcp, 4 MiB).
		mesh: "full.yaml", node: "cluster:tools",
		want: &extauthz.ExtAuthz{
			Services: &extauthz.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
				TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: "writ"}},
				Timeout:         durationpb.New(time.Second),
			}},
			TransportApiVersion:    core.ApiVersion_V3,
			StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			ValidateMutations:      true,
			IncludePeerCertificate: true,
			WithRequestBody:        &extauthz.BufferSettings{MaxRequestBytes: 4 << 20, AllowPartialMessage: true, PackAsBytes: true},
		},
	}, {
		// No MCP route: no body is buffered.
		mesh: "full.yaml", node: "sidecar-2",
		want: &extauthz.ExtAuthz{
			Services: &extauthz.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
				TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: "writ"}},
				Timeout:         durationpb.New(time.Second),
			}},
			TransportApiVersion:    core.ApiVersion_V3,
			StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
			ValidateMutations:      true,
			IncludePeerCertificate: true,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.mesh+"/"+tt.node, func(t *testing.T) {
			n := nodeByID(t, buildFile(t, tt.mesh), tt.node)
			m := managerOf(t, n.Resources[resource.ListenerType][0].(*listener.Listener))
			filters := m.GetHttpFilters()
			if got := []string{filters[0].GetName(), filters[1].GetName()}; !slices.Equal(got, []string{"envoy.filters.http.ext_authz", "envoy.filters.http.router"}) || len(filters) != 2 {
				t.Fatalf("http_filters = %v", got)
			}
			got := unpack(t, filters[0].GetTypedConfig(), &extauthz.ExtAuthz{})
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ext_authz (-want +got):\n%s", diff)
			}
			if got.GetFailureModeAllow() {
				t.Error("failure_mode_allow is true")
			}
			rds := m.GetRds()
			if rds.GetRouteConfigName() != "ingress" || rds.GetConfigSource().GetAds() == nil || rds.GetConfigSource().GetResourceApiVersion() != core.ApiVersion_V3 {
				t.Errorf("rds = %v", rds)
			}
		})
	}
}

// TestPerRoute checks each route's ExtAuthzPerRoute in full.yaml.
func TestPerRoute(t *testing.T) {
	n := nodeByID(t, buildFile(t, "full.yaml"), "cluster:tools")
	rc := n.Resources[resource.RouteType][0].(*route.RouteConfiguration)
	checked := func(ext map[string]string, body *extauthz.BufferSettings, disable bool) *extauthz.ExtAuthzPerRoute {
		return &extauthz.ExtAuthzPerRoute{Override: &extauthz.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthz.CheckSettings{
			ContextExtensions: ext, WithRequestBody: body, DisableRequestBodyBuffering: disable,
		}}}
	}
	want := map[string]*extauthz.ExtAuthzPerRoute{
		"search-mcp": checked(map[string]string{"resource": "mcp://search", "sensitivity": "low", "token_profile": "txn_token", "mcp": "true"},
			&extauthz.BufferSettings{MaxRequestBytes: 1 << 20, AllowPartialMessage: true, PackAsBytes: true}, false),
		"files-mcp": checked(map[string]string{"resource": "mcp://files", "tenant": "tenant-b", "sensitivity": "high", "mcp": "true"},
			&extauthz.BufferSettings{MaxRequestBytes: 4 << 20, AllowPartialMessage: true, PackAsBytes: true}, false),
		"files-ready": {Override: &extauthz.ExtAuthzPerRoute_Disabled{Disabled: true}},
		"rest":        checked(nil, nil, true),
	}
	vh := rc.GetVirtualHosts()[0]
	if !slices.Equal(vh.GetDomains(), []string{"tools.internal", "tools.internal:10000"}) {
		t.Errorf("domains = %v", vh.GetDomains())
	}
	var order []string
	for _, r := range vh.GetRoutes() {
		order = append(order, r.GetName())
		got := unpack(t, r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"], &extauthz.ExtAuthzPerRoute{})
		if diff := cmp.Diff(want[r.GetName()], got, protocmp.Transform()); diff != "" {
			t.Errorf("route %s (-want +got):\n%s", r.GetName(), diff)
		}
	}
	if !slices.Equal(order, []string{"search-mcp", "files-mcp", "files-ready", "rest"}) {
		t.Errorf("route order %v", order)
	}
	if m := vh.GetRoutes()[1].GetMatch(); m.GetPath() != "/files/mcp" || m.GetPrefix() != "" {
		t.Errorf("files-mcp match = %v", m)
	}
	if c := vh.GetRoutes()[0].GetRoute().GetCluster(); c != "search" {
		t.Errorf("search-mcp cluster = %q", c)
	}
}

// TestNoPerRouteWithoutContext: a checked route with no context on a
// sidecar without MCP routes carries no per-route config at all.
func TestNoPerRouteWithoutContext(t *testing.T) {
	n := nodeByID(t, buildFile(t, "full.yaml"), "sidecar-2")
	rc := n.Resources[resource.RouteType][0].(*route.RouteConfiguration)
	if got := rc.GetVirtualHosts()[0].GetRoutes()[0].GetTypedPerFilterConfig(); got != nil {
		t.Errorf("typed_per_filter_config = %v", got)
	}
	if got := rc.GetVirtualHosts()[0].GetDomains(); !slices.Equal(got, []string{"*"}) {
		t.Errorf("default domains = %v", got)
	}
}

func TestClusters(t *testing.T) {
	n := nodeByID(t, buildFile(t, "full.yaml"), "cluster:tools")
	clusters := map[string]*cluster.Cluster{}
	for _, r := range n.Resources[resource.ClusterType] {
		clusters[r.(*cluster.Cluster).GetName()] = r.(*cluster.Cluster)
	}
	http2 := func(c *cluster.Cluster) bool {
		opts := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if opts == nil {
			return false
		}
		return unpack(t, opts, &upstreamhttp.HttpProtocolOptions{}).GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
	}
	tests := []struct {
		name  string
		kind  cluster.Cluster_DiscoveryType
		http2 bool
	}{
		{"writ", cluster.Cluster_STRICT_DNS, true}, // writ.internal is a DNS name
		{"search", cluster.Cluster_STRICT_DNS, true},
		{"files", cluster.Cluster_EDS, true},
		{"greeter.test:8443", cluster.Cluster_EDS, false},
	}
	for _, tt := range tests {
		c := clusters[tt.name]
		if c.GetType() != tt.kind || http2(c) != tt.http2 {
			t.Errorf("cluster %s: type %v http2 %v, want %v %v", tt.name, c.GetType(), http2(c), tt.kind, tt.http2)
		}
	}
	tlsCtx := unpack(t, clusters["writ"].GetTransportSocket().GetTypedConfig(), &tlsv3.UpstreamTlsContext{})
	if tlsCtx.GetSni() != "writ.internal" ||
		tlsCtx.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != "/etc/writ/ca.pem" ||
		tlsCtx.GetCommonTlsContext().GetTlsCertificates()[0].GetPrivateKey().GetFilename() != "/etc/envoy/tls.key" ||
		tlsCtx.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != "writ.internal" {
		t.Errorf("writ TLS = %v", tlsCtx)
	}
	// The mcp-sidecar mesh has no TLS and an IP for writ.
	plain := nodeByID(t, buildFile(t, "mcp-sidecar.yaml"), "sidecar-tickets").Resources[resource.ClusterType][0].(*cluster.Cluster)
	if plain.GetName() != "writ" || plain.GetType() != cluster.Cluster_STATIC || plain.GetTransportSocket() != nil || !http2(plain) {
		t.Errorf("writ cluster = %v", plain)
	}
}

// TestGRPCService checks what gRPC-Go needs from an API listener.
func TestGRPCService(t *testing.T) {
	nodes := buildFile(t, "grpc-client.yaml")
	if len(nodes) != 1 || nodes[0].Node != "grpc-client-1" {
		t.Fatalf("nodes = %v", nodes)
	}
	n := nodes[0]
	l := n.Resources[resource.ListenerType][0].(*listener.Listener)
	if l.GetName() != "echo.test" || l.GetAddress() != nil || len(l.GetFilterChains()) != 0 {
		t.Errorf("listener = %v", l)
	}
	m := managerOf(t, l)
	filters := m.GetHttpFilters()
	if len(filters) != 1 || filters[0].GetName() != "envoy.filters.http.router" || !filters[0].GetTypedConfig().MessageIs(&router.Router{}) {
		t.Errorf("http_filters = %v", filters)
	}
	if m.GetRds().GetRouteConfigName() != "echo.test" || m.GetRds().GetConfigSource().GetAds() == nil {
		t.Errorf("rds = %v", m.GetRds())
	}
	rc := n.Resources[resource.RouteType][0].(*route.RouteConfiguration)
	vh := rc.GetVirtualHosts()[0]
	if rc.GetName() != "echo.test" || !slices.Equal(vh.GetDomains(), []string{"echo.test"}) || vh.GetRoutes()[0].GetRoute().GetCluster() != "echo.test" {
		t.Errorf("route configuration = %v", rc)
	}
	c := n.Resources[resource.ClusterType][0].(*cluster.Cluster)
	if c.GetType() != cluster.Cluster_EDS || c.GetLbPolicy() != cluster.Cluster_ROUND_ROBIN || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
		t.Errorf("cluster = %v", c)
	}
	cla := n.Resources[resource.EndpointType][0].(*endpoint.ClusterLoadAssignment)
	loc := cla.GetEndpoints()[0]
	sa := loc.GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if cla.GetClusterName() != "echo.test" || loc.GetLoadBalancingWeight().GetValue() != 1 || sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 50051 {
		t.Errorf("endpoints = %v", cla)
	}
}

func TestVersion(t *testing.T) {
	base := buildFile(t, "mcp-sidecar.yaml")[0]
	again := buildFile(t, "mcp-sidecar.yaml")[0]
	if base.Version() != again.Version() {
		t.Fatalf("same mesh, versions %s and %s", base.Version(), again.Version())
	}
	if !strings.HasPrefix(base.Version(), "sha256:") || len(base.Version()) != len("sha256:")+64 {
		t.Errorf("version %q", base.Version())
	}
	// Resource order within a type does not change the version.
	shuffled := xds.NodeConfig{Node: base.Node, Resources: map[string][]types.Resource{}}
	for typeURL, rs := range base.Resources {
		shuffled.Resources[typeURL] = slices.Clone(rs)
		slices.Reverse(shuffled.Resources[typeURL])
	}
	if shuffled.Version() != base.Version() {
		t.Errorf("reordered resources changed the version")
	}
	changes := map[string]func(m *xds.Mesh){
		"timeout":  func(m *xds.Mesh) { m.Writ.Timeout = time.Second },
		"tenant":   func(m *xds.Mesh) { m.Sidecars[0].Routes[1].Context.Tenant = "tenant-b" },
		"max size": func(m *xds.Mesh) { m.Sidecars[0].Routes[1].MaxRequestBytes = 2048 },
		"upstream": func(m *xds.Mesh) { m.Sidecars[0].Upstreams[0].Address = "127.0.0.1:8082" },
		"skip": func(m *xds.Mesh) {
			m.Sidecars[0].Routes[2].Authorization = "skip"
			m.Sidecars[0].Routes[2].Context = xds.RouteContext{}
		},
		"route order": func(m *xds.Mesh) {
			m.Sidecars[0].Routes[0], m.Sidecars[0].Routes[2] = m.Sidecars[0].Routes[2], m.Sidecars[0].Routes[0]
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			m, err := xds.LoadMesh("testdata/mcp-sidecar.yaml")
			if err != nil {
				t.Fatal(err)
			}
			change(m)
			nodes, err := xds.Build(m)
			if err != nil {
				t.Fatal(err)
			}
			if nodes[0].Version() == base.Version() {
				t.Errorf("changed mesh kept version %s", base.Version())
			}
		})
	}
}

// TestSnapshotRejects breaks built resources in the ways Snapshot must
// catch, including the api_listener references Consistent does not follow.
func TestSnapshotRejects(t *testing.T) {
	tests := []struct {
		name   string
		mesh   string
		mutate func(n xds.NodeConfig)
		want   string
	}{
		{"invalid resource", "mcp-sidecar.yaml", func(n xds.NodeConfig) {
			n.Resources[resource.ClusterType][1].(*cluster.Cluster).Name = ""
		}, `xds: inconsistent snapshot: node "sidecar-tickets": envoy.config.cluster.v3.Cluster "": invalid Cluster.Name: value length must be at least 1 runes`},
		{"route names a missing cluster", "mcp-sidecar.yaml", func(n xds.NodeConfig) {
			rc := n.Resources[resource.RouteType][0].(*route.RouteConfiguration)
			rc.VirtualHosts[0].Routes[1].GetRoute().ClusterSpecifier = &route.RouteAction_Cluster{Cluster: "gone"}
		}, `xds: inconsistent snapshot: node "sidecar-tickets": route configuration "ingress": route "mcp" names missing cluster "gone"`},
		{"ext_authz names a missing cluster", "mcp-sidecar.yaml", func(n xds.NodeConfig) {
			n.Resources[resource.ClusterType] = n.Resources[resource.ClusterType][1:]
		}, `xds: inconsistent snapshot: node "sidecar-tickets": listener "ingress": envoy.filters.http.ext_authz names missing cluster "writ"`},
		{"missing endpoints", "mcp-sidecar.yaml", func(n xds.NodeConfig) {
			delete(n.Resources, resource.EndpointType)
		}, `xds: inconsistent snapshot: node "sidecar-tickets": cluster "tickets": names missing endpoints "tickets"`},
		{"api listener names a missing route", "grpc-client.yaml", func(n xds.NodeConfig) {
			delete(n.Resources, resource.RouteType)
		}, `xds: inconsistent snapshot: node "grpc-client-1": listener "echo.test" api_listener: names missing route configuration "echo.test"`},
		{"api listener route names a missing cluster", "grpc-client.yaml", func(n xds.NodeConfig) {
			delete(n.Resources, resource.ClusterType)
			delete(n.Resources, resource.EndpointType)
		}, `xds: inconsistent snapshot: node "grpc-client-1": route configuration "echo.test": route "" names missing cluster "echo.test"`},
		{"api listener without router last", "grpc-client.yaml", func(n xds.NodeConfig) {
			l := n.Resources[resource.ListenerType][0].(*listener.Listener)
			m := &hcm.HttpConnectionManager{}
			_ = l.ApiListener.ApiListener.UnmarshalTo(m)
			m.HttpFilters = append(m.HttpFilters, &hcm.HttpFilter{Name: "envoy.filters.http.fault"})
			l.ApiListener.ApiListener, _ = anypb.New(m)
		}, `xds: inconsistent snapshot: node "grpc-client-1": listener "echo.test" api_listener: the last HTTP filter must be envoy.filters.http.router`},
		{"route no listener names", "grpc-client.yaml", func(n xds.NodeConfig) {
			delete(n.Resources, resource.ListenerType)
		}, `xds: inconsistent snapshot: node "grpc-client-1": route configuration "echo.test": no listener names it`},
		{"endpoints no cluster names", "grpc-client.yaml", func(n xds.NodeConfig) {
			n.Resources[resource.EndpointType] = append(n.Resources[resource.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: "stray"})
		}, `xds: inconsistent snapshot: node "grpc-client-1": endpoints "stray": no EDS cluster names them`},
		{"unpacked weight", "grpc-client.yaml", func(n xds.NodeConfig) {
			cla := n.Resources[resource.EndpointType][0].(*endpoint.ClusterLoadAssignment)
			cla.Endpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}, `xds: inconsistent snapshot: node "grpc-client-1": envoy.config.endpoint.v3.ClusterLoadAssignment "echo.test": invalid ClusterLoadAssignment.Endpoints[0]: embedded message failed validation | caused by: invalid LocalityLbEndpoints.LoadBalancingWeight: value must be greater than or equal to 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := buildFile(t, tt.mesh)[0]
			tt.mutate(n)
			snap, err := n.Snapshot()
			if !errors.Is(err, xds.ErrInconsistent) {
				t.Fatalf("got snapshot %v, error %v", snap != nil, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestMixedNode covers a node with a sidecar listener and an api_listener:
// go-control-plane's Consistent alone rejects it (it does not see the
// api_listener's route), so Snapshot checks that route itself and runs
// Consistent on the rest.
func TestMixedNode(t *testing.T) {
	n := nodeByID(t, buildFile(t, "full.yaml"), "sidecar-2")
	raw, err := cache.NewSnapshot(n.Version(), n.Resources)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Consistent(); err == nil || !strings.Contains(err.Error(), "mismatched") {
		t.Fatalf("Consistent on the raw snapshot: %v (the trap this guards against is gone?)", err)
	}
	snap, err := n.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(snap.GetResources(resource.RouteType)); got != 2 {
		t.Errorf("snapshot serves %d routes, want 2 (ingress and echo.test)", got)
	}
}

// BenchmarkBuild1000Routes builds one sidecar with 1,000 routes and its
// validated snapshot.
func BenchmarkBuild1000Routes(b *testing.B) {
	m := &xds.Mesh{
		Writ: xds.Writ{Address: "127.0.0.1:9191"},
		Sidecars: []xds.Sidecar{{
			Node:      "bench",
			Listen:    "0.0.0.0:10000",
			Upstreams: []xds.Upstream{{Name: "app", Address: "127.0.0.1:8081"}},
		}},
	}
	for i := range 1000 {
		r := xds.Route{
			Name:     fmt.Sprintf("r%d", i),
			Match:    xds.Match{Prefix: fmt.Sprintf("/r%d", i)},
			Upstream: "app",
			Context:  xds.RouteContext{Resource: fmt.Sprintf("mcp://r%d", i), Tenant: "tenant-a", Sensitivity: "high", TokenProfile: "access_token"},
		}
		if i%2 == 0 {
			r.MCP = true
		}
		m.Sidecars[0].Routes = append(m.Sidecars[0].Routes, r)
	}
	b.ReportAllocs()
	for b.Loop() {
		nodes, err := xds.Build(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := nodes[0].Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}
