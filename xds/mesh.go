package xds

// The mesh file names writ's ext_authz endpoint, the sidecars in front of
// upstream resources with their routes, and the gRPC services reached by
// gRPC xDS clients. Every key is listed here; unknown keys are rejected with
// their line.
//
//	writ:                         # where writ's ext_authz gRPC server listens
//	  address: 127.0.0.1:9191     # required when there is a sidecar; host:port.
//	                              #   An IP gives a STATIC cluster, a DNS name a
//	                              #   STRICT_DNS one. Envoy speaks HTTP/2 to it.
//	  timeout: 250ms              # ext_authz call timeout (Go duration, > 0);
//	                              #   default 250ms. It also bounds how long a
//	                              #   request may be held waiting for approval.
//	  tls:                        # optional: TLS from Envoy to writ. When set,
//	                              #   the filter also sends the downstream peer
//	                              #   certificate (include_peer_certificate).
//	    ca_file: /etc/writ/ca.pem    # required: CA bundle that signs writ's certificate
//	    cert_file: /etc/envoy/tls.crt  # optional, with key_file: Envoy's client
//	    key_file: /etc/envoy/tls.key   #   certificate for mutual TLS
//	    server_name: writ.internal   # optional: SNI and expected SAN;
//	                                 #   default the host of writ.address
//	sidecars:                     # Envoy sidecars; at least one sidecar or grpc service
//	  - node: sidecar-tickets     # the Envoy node id (--service-node / node.id) ...
//	    # cluster: tickets        # ... or, instead of node, the Envoy node cluster:
//	                              #   every Envoy of that cluster gets this config.
//	                              #   Exactly one of node and cluster.
//	    listen: 0.0.0.0:10000     # required: IP:port of the listener
//	    domains: ["*"]            # optional: virtual host domains; default ["*"]
//	    upstreams:                # at least one
//	      - name: tickets         # required, unique in the sidecar: the Envoy cluster
//	                              #   name ([A-Za-z0-9_.-], not "writ")
//	        address: 127.0.0.1:8081  # required host:port. An IP is served over
//	                              #   EDS, a DNS name as a STRICT_DNS cluster.
//	        protocol: http1       # http1 (default), http2 or grpc (HTTP/2)
//	    routes:                   # at least one; matched in order, first match wins
//	      - name: mcp             # required, unique in the sidecar
//	        match:                # exactly one of prefix and path
//	          prefix: /mcp        #   both must start with "/"
//	          # path: /healthz    #   exact path
//	        upstream: tickets     # required: one of the sidecar's upstreams
//	        mcp: true             # the route carries MCP (JSON-RPC): writ gets the
//	                              #   request body and context_extensions mcp="true"
//	        max_request_bytes: 1048576  # with mcp only: largest body buffered for
//	                              #   writ, in bytes (1 to 67108864);
//	                              #   default 1048576 (1 MiB)
//	        authorization: check  # check (default) or skip: skip disables ext_authz
//	                              #   on the route (health checks); a skipped route
//	                              #   has no mcp and no context
//	        context:              # optional route context sent to writ in
//	                              #   context_extensions; empty values are left out
//	          resource: mcp://tickets   # the resource id policies see
//	          tenant: tenant-a
//	          sensitivity: high
//	          token_profile: access_token  # access_token or txn_token
//	grpc_services:                # optional: services dialled by gRPC xDS clients
//	  - name: echo.test           # required: the host of the dial target
//	                              #   (xds:///echo.test); names the Listener, the
//	                              #   RouteConfiguration and the Cluster
//	    node: grpc-client-1       # the client's bootstrap node.id, or cluster:
//	                              #   exactly one of node and cluster
//	    upstream:
//	      address: 127.0.0.1:50051  # required IP:port of the service
//
// Each sidecar gets a Listener "ingress" and a RouteConfiguration "ingress"
// on its node; names must not collide within a node (an upstream and a gRPC
// service of the same name on one node are rejected).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	// ErrInvalidMesh is returned by ParseMesh, LoadMesh, Validate and Build
	// for a mesh file that cannot be served; the message names each problem
	// with its key path.
	ErrInvalidMesh = errors.New("xds: invalid mesh")
	// ErrInconsistent is returned by NodeConfig.Snapshot when a resource
	// fails Envoy's validation or references a resource the snapshot lacks.
	ErrInconsistent = errors.New("xds: inconsistent snapshot")
)

// Defaults and limits of the mesh file.
const (
	// DefaultTimeout is writ.timeout when unset.
	DefaultTimeout = 250 * time.Millisecond
	// DefaultMaxRequestBytes is max_request_bytes of an MCP route when unset.
	DefaultMaxRequestBytes = 1 << 20
	// MaxRequestBytesLimit is the largest max_request_bytes accepted.
	MaxRequestBytesLimit = 64 << 20
)

// Route authorization modes.
const (
	AuthorizationCheck = "check"
	AuthorizationSkip  = "skip"
)

// Upstream protocols.
const (
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
)

// Mesh is a parsed mesh file. The comment at the top of mesh.go shows every
// key with its default.
type Mesh struct {
	// Writ is where Envoy reaches writ's ext_authz server.
	Writ Writ `yaml:"writ"`
	// Sidecars are the Envoy sidecars in front of upstream resources.
	Sidecars []Sidecar `yaml:"sidecars"`
	// GRPCServices are services dialled by gRPC xDS clients.
	GRPCServices []GRPCService `yaml:"grpc_services"`
}

// Writ is writ's ext_authz endpoint.
type Writ struct {
	// Address is host:port of writ's ext_authz gRPC server.
	Address string `yaml:"address"`
	// Timeout bounds each ext_authz call; 0 means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// TLS, when set, makes Envoy speak TLS to writ and send the downstream
	// peer certificate in the check request.
	TLS *TLS `yaml:"tls"`
}

// TLS is Envoy's TLS towards writ.
type TLS struct {
	// CAFile is the CA bundle that signs writ's certificate (required).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are Envoy's client certificate for mutual TLS;
	// both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the SNI and expected SAN; default the host of
	// Writ.Address.
	ServerName string `yaml:"server_name"`
}

// Sidecar is one Envoy in front of upstream resources.
type Sidecar struct {
	// Node is the Envoy node id; exactly one of Node and Cluster.
	Node string `yaml:"node"`
	// Cluster is the Envoy node cluster; every Envoy of the cluster gets
	// this configuration.
	Cluster string `yaml:"cluster"`
	// Listen is the IP:port of the listener.
	Listen string `yaml:"listen"`
	// Domains are the virtual host domains; default ["*"].
	Domains []string `yaml:"domains"`
	// Upstreams are the clusters routes send to.
	Upstreams []Upstream `yaml:"upstreams"`
	// Routes are matched in order; the first match wins.
	Routes []Route `yaml:"routes"`
}

// Upstream is one upstream cluster of a sidecar.
type Upstream struct {
	// Name is the Envoy cluster name, unique in the sidecar.
	Name string `yaml:"name"`
	// Address is host:port: an IP is served over EDS, a DNS name as a
	// STRICT_DNS cluster.
	Address string `yaml:"address"`
	// Protocol is http1 (default), http2 or grpc.
	Protocol string `yaml:"protocol"`
}

// Route is one route of a sidecar.
type Route struct {
	// Name is unique in the sidecar.
	Name string `yaml:"name"`
	// Match selects the requests of the route.
	Match Match `yaml:"match"`
	// Upstream names one of the sidecar's upstreams.
	Upstream string `yaml:"upstream"`
	// MCP marks a route that carries MCP: writ receives the request body.
	MCP bool `yaml:"mcp"`
	// MaxRequestBytes is the largest body buffered for writ on an MCP
	// route, in bytes; 0 means DefaultMaxRequestBytes.
	MaxRequestBytes uint32 `yaml:"max_request_bytes"`
	// Authorization is check (default) or skip.
	Authorization string `yaml:"authorization"`
	// Context is the route context sent in context_extensions.
	Context RouteContext `yaml:"context"`
}

// Match is a route match: exactly one of Prefix and Path.
type Match struct {
	Prefix string `yaml:"prefix"`
	Path   string `yaml:"path"`
}

// RouteContext is what writ learns about a route from context_extensions.
type RouteContext struct {
	Resource     string `yaml:"resource"`
	Tenant       string `yaml:"tenant"`
	Sensitivity  string `yaml:"sensitivity"`
	TokenProfile string `yaml:"token_profile"` // access_token or txn_token
}

// GRPCService is a service dialled by gRPC xDS clients as xds:///Name.
type GRPCService struct {
	// Name is the host of the dial target.
	Name string `yaml:"name"`
	// Node is the client's node id; exactly one of Node and Cluster.
	Node    string `yaml:"node"`
	Cluster string `yaml:"cluster"`
	// Upstream is where the service runs.
	Upstream GRPCUpstream `yaml:"upstream"`
}

// GRPCUpstream is the endpoint of a gRPC service.
type GRPCUpstream struct {
	// Address is IP:port.
	Address string `yaml:"address"`
}

// ParseMesh decodes a mesh file strictly (unknown keys are errors that name
// the key and its line) and validates it.
func ParseMesh(raw []byte) (*Mesh, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var m Mesh
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty file", ErrInvalidMesh)
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidMesh, yamlMessage(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalidMesh)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// LoadMesh reads and parses the mesh file at path.
func LoadMesh(path string) (*Mesh, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xds: read mesh: %w", err)
	}
	return ParseMesh(raw)
}

var yamlUnknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlMessage turns a decode error into a message about keys, not Go types.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		e = yamlUnknownField.ReplaceAllString(e, `unknown key "$1"`)
		msgs[i] = e
	}
	return strings.Join(msgs, "; ")
}

// Validate checks the mesh and returns every problem, each naming its key
// path, wrapped in ErrInvalidMesh.
func (m *Mesh) Validate() error {
	v := &validator{}
	v.mesh(m)
	if len(v.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidMesh, strings.Join(v.problems, "; "))
}

type validator struct{ problems []string }

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, path+": "+fmt.Sprintf(format, args...))
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// nodeNames records, per node, which resource names are taken and by what.
type nodeNames struct {
	owner    map[string]string // node key → sidecars[i] path
	clusters map[string]map[string]string
	routes   map[string]map[string]string
}

func (n *nodeNames) claim(set map[string]map[string]string, node, name, path string) (string, bool) {
	if set[node] == nil {
		set[node] = map[string]string{}
	}
	if prev, ok := set[node][name]; ok {
		return prev, false
	}
	set[node][name] = path
	return "", true
}

func (v *validator) mesh(m *Mesh) {
	if len(m.Sidecars) == 0 && len(m.GRPCServices) == 0 {
		v.addf("sidecars", "a mesh needs at least one sidecar or grpc service")
	}
	if len(m.Sidecars) > 0 || m.Writ.Address != "" || m.Writ.TLS != nil || m.Writ.Timeout != 0 {
		v.writ(&m.Writ)
	}
	names := &nodeNames{
		owner:    map[string]string{},
		clusters: map[string]map[string]string{},
		routes:   map[string]map[string]string{},
	}
	for i := range m.Sidecars {
		v.sidecar(fmt.Sprintf("sidecars[%d]", i), &m.Sidecars[i], names)
	}
	for i := range m.GRPCServices {
		v.grpcService(fmt.Sprintf("grpc_services[%d]", i), &m.GRPCServices[i], names)
	}
}

func (v *validator) writ(w *Writ) {
	if w.Address == "" {
		v.addf("writ.address", "required")
	} else if msg := checkHostPort(w.Address, false); msg != "" {
		v.addf("writ.address", "%s", msg)
	}
	if w.Timeout < 0 {
		v.addf("writ.timeout", "must be positive, got %s", w.Timeout)
	}
	if t := w.TLS; t != nil {
		if t.CAFile == "" {
			v.addf("writ.tls.ca_file", "required")
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.addf("writ.tls", "cert_file and key_file go together")
		}
	}
}

// nodeKey returns the NodeConfig.Node of an entry with node and cluster keys.
func (v *validator) nodeKey(path, node, cluster string) string {
	switch {
	case node != "" && cluster != "":
		v.addf(path, "node and cluster are exclusive")
	case node == "" && cluster == "":
		v.addf(path+".node", "required (or cluster)")
	case strings.HasPrefix(node, "cluster:"):
		v.addf(path+".node", `must not start with "cluster:" (use the cluster key)`)
	case cluster != "":
		return "cluster:" + cluster
	default:
		return node
	}
	return ""
}

func (v *validator) sidecar(path string, s *Sidecar, names *nodeNames) {
	node := v.nodeKey(path, s.Node, s.Cluster)
	if node != "" {
		if prev, ok := names.owner[node]; ok {
			v.addf(path, "node %q already has a sidecar (%s)", node, prev)
		} else {
			names.owner[node] = path
			names.claim(names.routes, node, ingressName, path)
		}
	}
	if s.Listen == "" {
		v.addf(path+".listen", "required")
	} else if msg := checkHostPort(s.Listen, true); msg != "" {
		v.addf(path+".listen", "%s", msg)
	}
	seenDomain := map[string]bool{}
	for i, d := range s.Domains {
		p := fmt.Sprintf("%s.domains[%d]", path, i)
		switch {
		case d == "":
			v.addf(p, "must not be empty")
		case seenDomain[d]:
			v.addf(p, "duplicate domain %q", d)
		}
		seenDomain[d] = true
	}
	if len(s.Upstreams) == 0 {
		v.addf(path+".upstreams", "at least one upstream")
	}
	upstreams := map[string]bool{}
	for i, u := range s.Upstreams {
		p := fmt.Sprintf("%s.upstreams[%d]", path, i)
		switch {
		case u.Name == "":
			v.addf(p+".name", "required")
		case !nameRE.MatchString(u.Name):
			v.addf(p+".name", "must match %s", nameRE)
		case u.Name == writClusterName:
			v.addf(p+".name", "%q is reserved for writ's cluster", u.Name)
		case upstreams[u.Name]:
			v.addf(p+".name", "duplicate upstream %q", u.Name)
		default:
			upstreams[u.Name] = true
			if node != "" {
				names.claim(names.clusters, node, u.Name, p)
			}
		}
		if u.Address == "" {
			v.addf(p+".address", "required")
		} else if msg := checkHostPort(u.Address, false); msg != "" {
			v.addf(p+".address", "%s", msg)
		}
		switch u.Protocol {
		case "", ProtocolHTTP1, ProtocolHTTP2, ProtocolGRPC:
		default:
			v.addf(p+".protocol", "must be http1, http2 or grpc, got %q", u.Protocol)
		}
	}
	if len(s.Routes) == 0 {
		v.addf(path+".routes", "at least one route")
	}
	routes := map[string]bool{}
	for i := range s.Routes {
		v.route(fmt.Sprintf("%s.routes[%d]", path, i), &s.Routes[i], upstreams, routes)
	}
}

func (v *validator) route(p string, r *Route, upstreams, routes map[string]bool) {
	switch {
	case r.Name == "":
		v.addf(p+".name", "required")
	case routes[r.Name]:
		v.addf(p+".name", "duplicate route %q", r.Name)
	}
	routes[r.Name] = true
	switch {
	case r.Match.Prefix != "" && r.Match.Path != "":
		v.addf(p+".match", "prefix and path are exclusive")
	case r.Match.Prefix == "" && r.Match.Path == "":
		v.addf(p+".match", "one of prefix and path is required")
	case r.Match.Prefix != "" && !strings.HasPrefix(r.Match.Prefix, "/"):
		v.addf(p+".match.prefix", `must start with "/"`)
	case r.Match.Path != "" && !strings.HasPrefix(r.Match.Path, "/"):
		v.addf(p+".match.path", `must start with "/"`)
	}
	switch {
	case r.Upstream == "":
		v.addf(p+".upstream", "required")
	case !upstreams[r.Upstream]:
		v.addf(p+".upstream", "unknown upstream %q", r.Upstream)
	}
	if r.MaxRequestBytes != 0 {
		switch {
		case !r.MCP:
			v.addf(p+".max_request_bytes", "only for an mcp route")
		case r.MaxRequestBytes > MaxRequestBytesLimit:
			v.addf(p+".max_request_bytes", "must be at most %d, got %d", MaxRequestBytesLimit, r.MaxRequestBytes)
		}
	}
	switch r.Authorization {
	case "", AuthorizationCheck:
	case AuthorizationSkip:
		if r.MCP {
			v.addf(p+".authorization", "skip cannot be used on an mcp route")
		}
		if r.Context != (RouteContext{}) {
			v.addf(p+".context", "a route with authorization: skip has no context")
		}
	default:
		v.addf(p+".authorization", "must be check or skip, got %q", r.Authorization)
	}
	switch r.Context.TokenProfile {
	case "", "access_token", "txn_token":
	default:
		v.addf(p+".context.token_profile", "must be access_token or txn_token, got %q", r.Context.TokenProfile)
	}
}

func (v *validator) grpcService(path string, g *GRPCService, names *nodeNames) {
	node := v.nodeKey(path, g.Node, g.Cluster)
	switch {
	case g.Name == "":
		v.addf(path+".name", "required")
	case !grpcNameRE.MatchString(g.Name):
		v.addf(path+".name", "must be the host of an xds:/// target (%s), got %q", grpcNameRE, g.Name)
	case g.Name == writClusterName || g.Name == ingressName:
		v.addf(path+".name", "%q is reserved", g.Name)
	case node != "":
		if prev, ok := names.claim(names.clusters, node, g.Name, path); !ok {
			v.addf(path+".name", "%q is already used on node %q by %s", g.Name, node, prev)
		} else {
			names.claim(names.routes, node, g.Name, path)
		}
	}
	if g.Upstream.Address == "" {
		v.addf(path+".upstream.address", "required")
	} else if msg := checkHostPort(g.Upstream.Address, true); msg != "" {
		v.addf(path+".upstream.address", "%s", msg)
	}
}

var (
	grpcNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(:[0-9]+)?$`)
	hostRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
)

// checkHostPort returns "" for a valid host:port, else what is wrong.
func checkHostPort(addr string, ipOnly bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("want host:port, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port must be 1-65535, got %q", port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if ipOnly {
		return fmt.Sprintf("host must be an IP address, got %q", host)
	}
	if !hostRE.MatchString(host) {
		return fmt.Sprintf("host must be an IP address or a DNS name, got %q", host)
	}
	return ""
}
