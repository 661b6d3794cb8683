package xds

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names writ gives to Envoy resources and filters.
const (
	writClusterName = "writ"
	ingressName     = "ingress"
	extAuthzFilter  = "envoy.filters.http.ext_authz"
	routerFilter    = "envoy.filters.http.router"
	hcmFilter       = "envoy.filters.network.http_connection_manager"
	tlsSocket       = "envoy.transport_sockets.tls"
	protocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	connectTimeout  = 5 * time.Second
)

// Context extension keys writ reads from a check request.
const (
	extResource     = "resource"
	extTenant       = "tenant"
	extSensitivity  = "sensitivity"
	extTokenProfile = "token_profile"
	extMCP          = "mcp"
)

// typeOrder is the order of resource types in a NodeConfig and in Render.
var typeOrder = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// NodeConfig is the Envoy configuration of one node.
type NodeConfig struct {
	// Node is the Envoy node id this configuration is for, or
	// "cluster:NAME" for every node of the Envoy cluster NAME.
	Node string
	// Resources holds the resources by type URL (resource.ListenerType,
	// RouteType, ClusterType, EndpointType).
	Resources map[string][]types.Resource
}

// Build turns a mesh into per-node Envoy resources, sorted by node. It does
// no I/O and the same mesh always yields the same resources.
func Build(m *Mesh) ([]NodeConfig, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := &builder{mesh: m, nodes: map[string]*NodeConfig{}}
	for i := range m.Sidecars {
		b.sidecar(&m.Sidecars[i])
	}
	for i := range m.GRPCServices {
		b.grpcService(&m.GRPCServices[i])
	}
	out := make([]NodeConfig, 0, len(b.nodes))
	for _, n := range b.nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b NodeConfig) int { return cmp.Compare(a.Node, b.Node) })
	return out, nil
}

type builder struct {
	mesh  *Mesh
	nodes map[string]*NodeConfig
}

func (b *builder) node(id, cluster string) *NodeConfig {
	key := id
	if cluster != "" {
		key = "cluster:" + cluster
	}
	n, ok := b.nodes[key]
	if !ok {
		n = &NodeConfig{Node: key, Resources: map[string][]types.Resource{}}
		b.nodes[key] = n
	}
	return n
}

func (n *NodeConfig) add(typeURL string, r types.Resource) {
	n.Resources[typeURL] = append(n.Resources[typeURL], r)
}

func (b *builder) sidecar(s *Sidecar) {
	n := b.node(s.Node, s.Cluster)
	n.add(resource.ListenerType, sidecarListener(s, &b.mesh.Writ))
	n.add(resource.RouteType, sidecarRoutes(s))
	n.add(resource.ClusterType, writCluster(&b.mesh.Writ))
	for _, u := range s.Upstreams {
		c, cla := upstreamCluster(u)
		n.add(resource.ClusterType, c)
		if cla != nil {
			n.add(resource.EndpointType, cla)
		}
	}
}

func (b *builder) grpcService(g *GRPCService) {
	n := b.node(g.Node, g.Cluster)
	manager := &hcm.HttpConnectionManager{
		StatPrefix:     g.Name,
		RouteSpecifier: rds(g.Name),
		HttpFilters:    []*hcm.HttpFilter{httpFilter(routerFilter, &router.Router{})},
	}
	n.add(resource.ListenerType, &listener.Listener{
		Name:        g.Name,
		ApiListener: &listener.ApiListener{ApiListener: mustAny(manager)},
	})
	n.add(resource.RouteType, &route.RouteConfiguration{
		Name: g.Name,
		VirtualHosts: []*route.VirtualHost{{
			Name:    g.Name,
			Domains: []string{g.Name},
			Routes: []*route.Route{{
				Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: routeTo(g.Name),
			}},
		}},
	})
	n.add(resource.ClusterType, edsCluster(g.Name))
	host, port := splitHostPort(g.Upstream.Address)
	n.add(resource.EndpointType, loadAssignment(g.Name, host, port))
}

// sidecarListener is the sidecar's listener: ext_authz, then the router.
func sidecarListener(s *Sidecar, w *Writ) *listener.Listener {
	manager := &hcm.HttpConnectionManager{
		StatPrefix:     ingressName,
		CodecType:      hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: rds(ingressName),
		HttpFilters: []*hcm.HttpFilter{
			httpFilter(extAuthzFilter, extAuthzConfig(s, w)),
			httpFilter(routerFilter, &router.Router{}),
		},
	}
	host, port := splitHostPort(s.Listen)
	return &listener.Listener{
		Name:    ingressName,
		Address: socketAddress(host, port),
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{{
				Name:       hcmFilter,
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(manager)},
			}},
		}},
	}
}

// extAuthzConfig is the ext_authz filter of a sidecar.
func extAuthzConfig(s *Sidecar, w *Writ) *extauthz.ExtAuthz {
	timeout := w.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cfg := &extauthz.ExtAuthz{
		Services: &extauthz.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: writClusterName}},
			Timeout:         durationpb.New(timeout),
		}},
		TransportApiVersion: core.ApiVersion_V3,
		// A request writ has not decided is never let through.
		FailureModeAllow: false,
		// When writ cannot be reached or times out, the caller sees 503
		// (retry later), not Envoy's default 403, which would claim a
		// decision that was never made.
		StatusOnError:          &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		ValidateMutations:      true,
		IncludePeerCertificate: w.TLS != nil,
	}
	// Buffering is switched on at the filter for the largest MCP route, and
	// each route then sets its own size (or turns buffering off): Envoy
	// applies the per-route with_request_body over the filter's.
	var largest uint32
	for _, r := range s.Routes {
		if r.MCP {
			largest = max(largest, maxRequestBytes(r))
		}
	}
	if largest > 0 {
		cfg.WithRequestBody = bufferSettings(largest)
	}
	return cfg
}

func maxRequestBytes(r Route) uint32 {
	if r.MaxRequestBytes == 0 {
		return DefaultMaxRequestBytes
	}
	return r.MaxRequestBytes
}

func bufferSettings(n uint32) *extauthz.BufferSettings {
	return &extauthz.BufferSettings{MaxRequestBytes: n, AllowPartialMessage: true, PackAsBytes: true}
}

// sidecarRoutes is the sidecar's route configuration, in mesh order.
func sidecarRoutes(s *Sidecar) *route.RouteConfiguration {
	buffering := false
	for _, r := range s.Routes {
		buffering = buffering || r.MCP
	}
	domains := s.Domains
	if len(domains) == 0 {
		domains = []string{"*"}
	}
	routes := make([]*route.Route, 0, len(s.Routes))
	for _, r := range s.Routes {
		rt := &route.Route{
			Name:   r.Name,
			Match:  routeMatch(r.Match),
			Action: routeTo(r.Upstream),
		}
		if per := perRoute(r, buffering); per != nil {
			rt.TypedPerFilterConfig = map[string]*anypb.Any{extAuthzFilter: mustAny(per)}
		}
		routes = append(routes, rt)
	}
	return &route.RouteConfiguration{
		Name: ingressName,
		VirtualHosts: []*route.VirtualHost{{
			Name:    ingressName,
			Domains: slices.Clone(domains),
			Routes:  routes,
		}},
	}
}

// perRoute is the route's ExtAuthzPerRoute, or nil when the filter's
// settings apply unchanged.
func perRoute(r Route, buffering bool) *extauthz.ExtAuthzPerRoute {
	if r.Authorization == AuthorizationSkip {
		return &extauthz.ExtAuthzPerRoute{Override: &extauthz.ExtAuthzPerRoute_Disabled{Disabled: true}}
	}
	settings := &extauthz.CheckSettings{}
	ext := map[string]string{}
	for k, v := range map[string]string{
		extResource:     r.Context.Resource,
		extTenant:       r.Context.Tenant,
		extSensitivity:  r.Context.Sensitivity,
		extTokenProfile: r.Context.TokenProfile,
	} {
		if v != "" {
			ext[k] = v
		}
	}
	switch {
	case r.MCP:
		ext[extMCP] = "true"
		settings.WithRequestBody = bufferSettings(maxRequestBytes(r))
	case buffering:
		settings.DisableRequestBodyBuffering = true
	}
	if len(ext) > 0 {
		settings.ContextExtensions = ext
	}
	if len(ext) == 0 && !settings.DisableRequestBodyBuffering && settings.WithRequestBody == nil {
		return nil
	}
	return &extauthz.ExtAuthzPerRoute{Override: &extauthz.ExtAuthzPerRoute_CheckSettings{CheckSettings: settings}}
}

func routeMatch(m Match) *route.RouteMatch {
	if m.Path != "" {
		return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: m.Path}}
	}
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: m.Prefix}}
}

func routeTo(clusterName string) *route.Route_Route {
	return &route.Route_Route{Route: &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
	}}
}

// writCluster is the cluster of writ's ext_authz server, over HTTP/2.
func writCluster(w *Writ) *cluster.Cluster {
	host, port := splitHostPort(w.Address)
	kind := cluster.Cluster_STATIC
	if _, err := netip.ParseAddr(host); err != nil {
		kind = cluster.Cluster_STRICT_DNS
	}
	c := &cluster.Cluster{
		Name:                          writClusterName,
		ClusterDiscoveryType:          &cluster.Cluster_Type{Type: kind},
		ConnectTimeout:                durationpb.New(connectTimeout),
		LoadAssignment:                loadAssignment(writClusterName, host, port),
		TypedExtensionProtocolOptions: http2Options(),
	}
	if w.TLS != nil {
		c.TransportSocket = upstreamTLS(w.TLS, host)
	}
	return c
}

func upstreamTLS(t *TLS, host string) *core.TransportSocket {
	name := t.ServerName
	if name == "" {
		name = host
	}
	san := &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: name}},
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa:                 fileSource(t.CAFile),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
		}},
	}}
	if _, err := netip.ParseAddr(name); err == nil {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	} else {
		ctx.Sni = name
	}
	if t.CertFile != "" {
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(t.CertFile),
			PrivateKey:       fileSource(t.KeyFile),
		}}
	}
	return &core.TransportSocket{
		Name:       tlsSocket,
		ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func fileSource(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}

// upstreamCluster is the cluster of an upstream and, for an IP address, its
// endpoints over EDS; a DNS name is resolved by Envoy (STRICT_DNS).
func upstreamCluster(u Upstream) (*cluster.Cluster, *endpoint.ClusterLoadAssignment) {
	host, port := splitHostPort(u.Address)
	var c *cluster.Cluster
	var cla *endpoint.ClusterLoadAssignment
	if _, err := netip.ParseAddr(host); err == nil {
		c = edsCluster(u.Name)
		cla = loadAssignment(u.Name, host, port)
	} else {
		c = &cluster.Cluster{
			Name:                 u.Name,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS},
			ConnectTimeout:       durationpb.New(connectTimeout),
			LoadAssignment:       loadAssignment(u.Name, host, port),
		}
	}
	if u.Protocol == ProtocolHTTP2 || u.Protocol == ProtocolGRPC {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	return c, cla
}

func edsCluster(name string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	}
}

// loadAssignment is one endpoint in one locality of weight 1 (gRPC clients
// route nothing to a locality without a weight).
func loadAssignment(name, host string, port uint32) *endpoint.ClusterLoadAssignment {
	return &endpoint.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			Locality:            &core.Locality{},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints: []*endpoint.LbEndpoint{{
				HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: socketAddress(host, port),
				}},
			}},
		}},
	}
}

func http2Options() map[string]*anypb.Any {
	opts := &upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{},
				},
			},
		},
	}
	return map[string]*anypb.Any{protocolOptions: mustAny(opts)}
}

func rds(name string) *hcm.HttpConnectionManager_Rds {
	return &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource(), RouteConfigName: name}}
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		ResourceApiVersion:    core.ApiVersion_V3,
	}
}

func httpFilter(name string, cfg proto.Message) *hcm.HttpFilter {
	return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func socketAddress(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol:      core.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

// splitHostPort splits an address Validate accepted.
func splitHostPort(addr string) (string, uint32) {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.ParseUint(port, 10, 16)
	return host, uint32(n)
}

// mustAny packs a message built here, deterministically so that the same
// mesh gives the same bytes (and Version); it fails only for a nil message.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("xds: pack %T: %v", m, err))
	}
	return a
}

// Version is the content hash of the node's resources: the SHA-256 of
// every resource's deterministic protobuf encoding, by type and name. An
// unchanged mesh gives an unchanged version.
func (n NodeConfig) Version() string {
	type entry struct {
		typeURL, name string
		body          []byte
	}
	var entries []entry
	for typeURL, rs := range n.Resources {
		for _, r := range rs {
			body, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				body = []byte(err.Error())
			}
			entries = append(entries, entry{typeURL, nameOf(r), body})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.typeURL, b.typeURL), cmp.Compare(a.name, b.name))
	})
	h := sha256.New()
	for _, e := range entries {
		// Length-prefixed so that no two sets of resources hash alike.
		for _, part := range [][]byte{[]byte(e.typeURL), []byte(e.name), e.body} {
			h.Write(strconv.AppendInt(nil, int64(len(part)), 10))
			h.Write([]byte{':'})
			h.Write(part)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// nameOf is the xDS name of a resource built here.
func nameOf(r types.Resource) string {
	switch v := r.(type) {
	case *listener.Listener:
		return v.GetName()
	case *route.RouteConfiguration:
		return v.GetName()
	case *cluster.Cluster:
		return v.GetName()
	case *endpoint.ClusterLoadAssignment:
		return v.GetClusterName()
	}
	return ""
}

// Snapshot is the node's go-control-plane snapshot, versioned by Version.
// Before returning it checks every resource with Envoy's ValidateAll, the
// snapshot with Consistent, and what Consistent does not follow: the
// routes of api_listener resources (gRPC clients), the clusters every route
// and the ext_authz filter name, and the router as the last HTTP filter.
// Any failure wraps ErrInconsistent.
func (n NodeConfig) Snapshot() (*cache.Snapshot, error) {
	byType := make(map[resource.Type][]types.Resource, len(n.Resources))
	for typeURL, rs := range n.Resources {
		for _, r := range rs {
			v, ok := r.(interface{ ValidateAll() error })
			if !ok {
				return nil, fmt.Errorf("%w: node %q: %T has no validation", ErrInconsistent, n.Node, r)
			}
			if err := v.ValidateAll(); err != nil {
				return nil, fmt.Errorf("%w: node %q: %s %q: %v", ErrInconsistent, n.Node, shortType(typeURL), nameOf(r), err)
			}
		}
		byType[typeURL] = rs
	}
	version := n.Version()
	snap, err := cache.NewSnapshot(version, byType)
	if err != nil {
		return nil, fmt.Errorf("%w: node %q: %v", ErrInconsistent, n.Node, err)
	}
	apiOnly, err := n.checkReferences()
	if err != nil {
		return nil, fmt.Errorf("%w: node %q: %v", ErrInconsistent, n.Node, err)
	}
	// Consistent counts only routes named by socket listeners, so it runs
	// on a view without the routes only api_listeners name (checked above).
	view := snap
	if len(apiOnly) > 0 {
		filtered := maps.Clone(byType)
		filtered[resource.RouteType] = slices.DeleteFunc(slices.Clone(byType[resource.RouteType]), func(r types.Resource) bool {
			return apiOnly[nameOf(r)]
		})
		if view, err = cache.NewSnapshot(version, filtered); err != nil {
			return nil, fmt.Errorf("%w: node %q: %v", ErrInconsistent, n.Node, err)
		}
	}
	if err := view.Consistent(); err != nil {
		return nil, fmt.Errorf("%w: node %q: %v", ErrInconsistent, n.Node, err)
	}
	return snap, nil
}

// checkReferences checks every reference between the node's resources,
// api_listeners included, and returns the routes named only by
// api_listeners.
func (n NodeConfig) checkReferences() (map[string]bool, error) {
	names := func(typeURL string) map[string]bool {
		set := map[string]bool{}
		for _, r := range n.Resources[typeURL] {
			set[nameOf(r)] = true
		}
		return set
	}
	routes, clusters, endpoints := names(resource.RouteType), names(resource.ClusterType), names(resource.EndpointType)
	socketRoutes, apiRoutes := map[string]bool{}, map[string]bool{}

	checkManager := func(where string, m *hcm.HttpConnectionManager, api bool) error {
		filters := m.GetHttpFilters()
		if len(filters) == 0 || filters[len(filters)-1].GetName() != routerFilter {
			return fmt.Errorf("%s: the last HTTP filter must be %s", where, routerFilter)
		}
		for _, f := range filters {
			var ea extauthz.ExtAuthz
			if f.GetTypedConfig().MessageIs(&ea) {
				if err := f.GetTypedConfig().UnmarshalTo(&ea); err != nil {
					return fmt.Errorf("%s: %s: %v", where, f.GetName(), err)
				}
				if c := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "" && !clusters[c] {
					return fmt.Errorf("%s: %s names missing cluster %q", where, f.GetName(), c)
				}
			}
		}
		if rc := m.GetRouteConfig(); rc != nil {
			return checkRouteClusters(where, rc, clusters)
		}
		name := m.GetRds().GetRouteConfigName()
		if name == "" {
			return fmt.Errorf("%s: no route configuration", where)
		}
		if !routes[name] {
			return fmt.Errorf("%s: names missing route configuration %q", where, name)
		}
		if api {
			apiRoutes[name] = true
		} else {
			socketRoutes[name] = true
		}
		return nil
	}

	for _, r := range n.Resources[resource.ListenerType] {
		l := r.(*listener.Listener)
		where := fmt.Sprintf("listener %q", l.GetName())
		if a := l.GetApiListener().GetApiListener(); a != nil {
			var m hcm.HttpConnectionManager
			if err := a.UnmarshalTo(&m); err != nil {
				return nil, fmt.Errorf("%s: api_listener: %v", where, err)
			}
			if err := checkManager(where+" api_listener", &m, true); err != nil {
				return nil, err
			}
			continue
		}
		for _, chain := range l.GetFilterChains() {
			for _, f := range chain.GetFilters() {
				if m := resource.GetHTTPConnectionManager(f); m != nil {
					if err := checkManager(where, m, false); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	for _, r := range n.Resources[resource.RouteType] {
		rc := r.(*route.RouteConfiguration)
		if !socketRoutes[rc.GetName()] && !apiRoutes[rc.GetName()] {
			return nil, fmt.Errorf("route configuration %q: no listener names it", rc.GetName())
		}
		if err := checkRouteClusters(fmt.Sprintf("route configuration %q", rc.GetName()), rc, clusters); err != nil {
			return nil, err
		}
	}
	referenced := map[string]bool{}
	for _, r := range n.Resources[resource.ClusterType] {
		c := r.(*cluster.Cluster)
		if c.GetType() != cluster.Cluster_EDS {
			continue
		}
		name := cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName())
		if !endpoints[name] {
			return nil, fmt.Errorf("cluster %q: names missing endpoints %q", c.GetName(), name)
		}
		referenced[name] = true
	}
	for name := range endpoints {
		if !referenced[name] {
			return nil, fmt.Errorf("endpoints %q: no EDS cluster names them", name)
		}
	}
	apiOnly := map[string]bool{}
	for name := range apiRoutes {
		if !socketRoutes[name] {
			apiOnly[name] = true
		}
	}
	return apiOnly, nil
}

func checkRouteClusters(where string, rc *route.RouteConfiguration, clusters map[string]bool) error {
	for _, vh := range rc.GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			if c := rt.GetRoute().GetCluster(); c != "" && !clusters[c] {
				return fmt.Errorf("%s: route %q names missing cluster %q", where, rt.GetName(), c)
			}
		}
	}
	return nil
}

// shortType is the message name of a type URL.
func shortType(typeURL string) string {
	return strings.TrimPrefix(typeURL, resource.APITypePrefix)
}
