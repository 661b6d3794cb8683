package mcp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// envoyStandIn does, for one route, what Envoy's ext_authz HTTP filter does
// with writ as its gRPC authorization service. Envoy itself cannot run here
// (no package registry this project reaches ships it), so this small
// reverse proxy stands in for it: for each request it buffers the body,
// sends writ a CheckRequest shaped as Envoy's (lower-cased headers with the
// :method, :path, :authority and :scheme pseudo-headers, an x-request-id,
// the raw body, the source address, and the route's context_extensions),
// and then either forwards the request upstream with writ's header
// mutations applied (set and append, then remove, as Envoy orders them;
// response headers added on the way back) or answers with writ's denial
// (its status, headers and body). A failed Check is a 403, as with Envoy's
// default status_on_error and failure_mode_allow false.
type envoyStandIn struct {
	srv      *httptest.Server
	upstream *url.URL
	ext      map[string]string
	authz    authv3.AuthorizationClient
	proxy    *httputil.ReverseProxy

	mu  sync.Mutex
	log []exchange
}

// exchange is one request through the stand-in, as the tests read it back.
type exchange struct {
	Method, Path string
	// RequestID is the x-request-id writ was sent.
	RequestID string
	// RPCMethod is the JSON-RPC method of the body, "" when there is none.
	RPCMethod string
	// Status is what the client was answered; Allowed says writ allowed it.
	Status  int
	Allowed bool
	// DecisionID is writ's x-writ-decision-id.
	DecisionID string
	// Challenge is the WWW-Authenticate header of a denial.
	Challenge string
}

// maxBody is the body the stand-in buffers (Envoy's max_request_bytes).
const maxBody = 1 << 20

// newEnvoyStandIn binds the stand-in's listener, so its URL is known before
// writ starts; start serves it once writ's gRPC address is known.
func newEnvoyStandIn(t *testing.T, upstream string) *envoyStandIn {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	s := &envoyStandIn{upstream: u}
	s.srv = httptest.NewUnstartedServer(s)
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(s.upstream)
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
		// The exchange is complete before the client sees the answer.
		ModifyResponse: func(resp *http.Response) error {
			f := forwarded(resp.Request.Context())
			for _, h := range f.responseHeaders {
				applyHeader(resp.Header, h)
			}
			s.setStatus(f.exchange, resp.StatusCode)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.setStatus(forwarded(r.Context()).exchange, http.StatusBadGateway)
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	return s
}

// URL is the stand-in's base URL.
func (s *envoyStandIn) URL() string { return "http://" + s.srv.Listener.Addr().String() }

// start connects to writ's ext_authz gRPC listener and serves. ext is the
// route's context_extensions.
func (s *envoyStandIn) start(t *testing.T, grpcAddr string, ext map[string]string) {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.authz = authv3.NewAuthorizationClient(conn)
	s.ext = ext
	s.srv.Start()
	t.Cleanup(func() {
		s.srv.Close()
		conn.Close()
	})
}

// exchanges returns a copy of the requests seen so far.
func (s *envoyStandIn) exchanges() []exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]exchange(nil), s.log...)
}

// record appends e and returns its index.
func (s *envoyStandIn) record(e exchange) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, e)
	return len(s.log) - 1
}

func (s *envoyStandIn) setStatus(i, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log[i].Status = status
}

func (s *envoyStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	req := s.checkRequest(r, body)
	ex := exchange{Method: r.Method, Path: r.URL.Path, RequestID: req.GetAttributes().GetRequest().GetHttp().GetId(), RPCMethod: rpcMethod(body)}

	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	resp, err := s.authz.Check(ctx, req)
	cancel()
	if err != nil {
		ex.Status = http.StatusForbidden
		s.record(ex)
		http.Error(w, "ext_authz check failed: "+err.Error(), http.StatusForbidden)
		return
	}

	if ok := resp.GetOkResponse(); resp.GetStatus().GetCode() == 0 && resp.GetDeniedResponse() == nil {
		ex.Allowed = true
		out := r.Clone(r.Context())
		for _, h := range ok.GetHeaders() {
			applyHeader(out.Header, h)
		}
		for _, name := range ok.GetHeadersToRemove() {
			out.Header.Del(name)
		}
		ex.DecisionID = out.Header.Get("x-writ-decision-id")
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		f := forwarding{exchange: s.record(ex), responseHeaders: ok.GetResponseHeadersToAdd()}
		s.proxy.ServeHTTP(w, out.WithContext(context.WithValue(out.Context(), forwardingKey{}, f)))
		return
	}

	denied := resp.GetDeniedResponse()
	for _, h := range denied.GetHeaders() {
		applyHeader(w.Header(), h)
	}
	status := int(denied.GetStatus().GetCode())
	if status == 0 {
		status = http.StatusForbidden
	}
	ex.Status = status
	ex.DecisionID = w.Header().Get("x-writ-decision-id")
	ex.Challenge = w.Header().Get("www-authenticate")
	s.record(ex)
	w.WriteHeader(status)
	io.WriteString(w, denied.GetBody())
}

// checkRequest is the CheckRequest Envoy would send for r.
func (s *envoyStandIn) checkRequest(r *http.Request, body []byte) *authv3.CheckRequest {
	headers := map[string]string{
		":method":    r.Method,
		":path":      r.URL.RequestURI(),
		":authority": r.Host,
		":scheme":    "http",
	}
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ",")
	}
	requestID := headers["x-request-id"]
	if requestID == "" {
		b := make([]byte, 16)
		rand.Read(b)
		requestID = hex.EncodeToString(b)
		headers["x-request-id"] = requestID
	}
	host, port, _ := net.SplitHostPort(r.RemoteAddr)
	p, _ := strconv.ParseUint(port, 10, 32)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: requestID, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Scheme: "http", Protocol: r.Proto,
			Headers: headers, RawBody: body, Size: int64(len(body)),
		}},
		ContextExtensions: s.ext,
	}}
}

// applyHeader applies one of writ's header mutations the way Envoy does:
// the deprecated append flag when set, else append_action.
func applyHeader(h http.Header, o *corev3.HeaderValueOption) {
	k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
	if o.GetHeader().GetRawValue() != nil {
		v = string(o.GetHeader().GetRawValue())
	}
	action := o.GetAppendAction()
	if a := o.GetAppend(); a != nil {
		action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if a.GetValue() {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
	}
	switch action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.Add(k, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if h.Get(k) == "" {
			h.Set(k, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if h.Get(k) != "" {
			h.Set(k, v)
		}
	default:
		h.Set(k, v)
	}
}

// rpcMethod is the method of a JSON-RPC request body, "" when it is not one.
func rpcMethod(body []byte) string {
	var m struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return m.Method
}

// forwarding is what the proxy's response hooks need of an allowed request.
type forwarding struct {
	exchange        int // index in the log
	responseHeaders []*corev3.HeaderValueOption
}

type forwardingKey struct{}

func forwarded(ctx context.Context) forwarding {
	f, _ := ctx.Value(forwardingKey{}).(forwarding)
	return f
}
