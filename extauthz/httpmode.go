package extauthz

import (
	"net/http"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
)

// Envoy's HTTP service mode.
//
// In this mode Envoy does not send a CheckRequest: it sends writ a copy of
// the agent's request (same method, path_prefix prepended to the path, the
// headers allowed by authorization_request.allowed_headers, and the body
// when with_request_body is set). writ rebuilds the CheckRequest the gRPC
// mode would have received, decides it the same way, and answers with an
// HTTP response Envoy reads as the decision.
//
// Route context travels in request headers Envoy adds with
// authorization_request.headers_to_add. headers_to_add overrides any
// value the agent sent, and Envoy only forwards the agent's own headers
// that allowed_headers matches: never list an x-writ-* name there. Each
// header becomes the context extension writ's gRPC mode reads, and is
// removed from the request's headers:
//
//	x-writ-resource           context_extensions["resource"]
//	x-writ-tenant             context_extensions["tenant"]
//	x-writ-sensitivity        context_extensions["sensitivity"]
//	x-writ-token-profile      context_extensions["token_profile"]
//	x-writ-mcp                context_extensions["mcp"] ("true" for an MCP route)
//	x-writ-source-principal   source.principal (for example the SPIFFE ID
//	                          from %DOWNSTREAM_PEER_URI_SAN%)
//
// The answer (writeHTTPResponse): 200 allows; the headers to set on the
// upstream request come back as response headers (list their names in
// authorization_response.allowed_upstream_headers), headers to remove are
// listed, comma-separated, in x-envoy-auth-headers-to-remove (the same
// list the gRPC mode sends as headers_to_remove: the agent's credentials,
// its x-writ-* headers, the decision's removals), and headers
// for the agent's response come back too (allowed_client_headers_on_success).
// Any other status denies: Envoy sends that status, the headers
// allowed_client_headers matches, and the body to the agent.
//
// writ can only list the headers Envoy forwards to it. Since allowed_headers
// must not match x-writ-*, an agent's own x-writ-* headers are not seen in
// this mode, and so not removed: strip them before the upstream in Envoy's
// own configuration (for example a header mutation filter on the route).
const (
	hdrWritResource        = "x-writ-resource"
	hdrWritTenant          = "x-writ-tenant"
	hdrWritSensitivity     = "x-writ-sensitivity"
	hdrWritTokenProfile    = "x-writ-token-profile"
	hdrWritMCP             = "x-writ-mcp"
	hdrWritSourcePrincipal = "x-writ-source-principal"

	hdrAuthHeadersToRemove = "x-envoy-auth-headers-to-remove"
)

// routeHeaders maps the route-context headers to context extension keys.
var routeHeaders = map[string]string{
	hdrWritResource:     extResource,
	hdrWritTenant:       extTenant,
	hdrWritSensitivity:  extSensitivity,
	hdrWritTokenProfile: extTokenProfile,
	hdrWritMCP:          extMCP,
}

// checkRequestFromHTTP rebuilds the CheckRequest of a request Envoy sent
// in HTTP service mode. pathPrefix is the path_prefix configured in
// Envoy's http_service, stripped from the path. body is what writ read;
// truncated reports that the request carried more than that, and is passed
// on as x-envoy-auth-partial-body: true.
//
// Header names are lower-cased and repeated values joined with ","; the
// pseudo-headers :method, :path and :authority are added as Envoy's gRPC
// mode sends them. Header values that are not UTF-8 have the offending
// bytes replaced with U+FFFD, since a CheckRequest carries them as proto
// strings. request.http.id is x-request-id; request.time is left unset.
func checkRequestFromHTTP(r *http.Request, pathPrefix string, body []byte, truncated bool) *authv3.CheckRequest {
	// The request target as sent: origin-form keeps its exact encoding;
	// absolute-form is reduced to its path and query.
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") && r.URL != nil {
		path = r.URL.RequestURI()
	}
	if pathPrefix != "" && strings.HasPrefix(path, pathPrefix) {
		path = path[len(pathPrefix):]
		if path == "" || path[0] == '?' {
			path = "/" + path
		}
	}

	headers := make(map[string]string, len(r.Header)+3)
	ext := make(map[string]string, 2)
	var principal string
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		value := validUTF8(strings.Join(values, ","))
		if key, ok := routeHeaders[lower]; ok {
			ext[key] = value
			continue
		}
		if lower == hdrWritSourcePrincipal {
			principal = value
			continue
		}
		headers[lower] = value
	}
	host := validUTF8(r.Host)
	method := validUTF8(r.Method)
	path = validUTF8(path)
	headers[":method"] = method
	headers[":path"] = path
	if host != "" {
		headers[":authority"] = host
	}
	if truncated {
		headers[hdrPartialBody] = "true"
	}

	size := int64(len(body))
	if truncated {
		size = -1 // unknown: more than was read
	}
	httpReq := &authv3.AttributeContext_HttpRequest{
		Id:      headers[hdrRequestID],
		Method:  method,
		Headers: headers,
		Path:    path,
		Host:    host,
		Size:    size,
	}
	if len(body) > 0 {
		// Envoy's gRPC mode sends body as a string unless pack_as_bytes is
		// set; a body that is not UTF-8 can only travel as bytes.
		if utf8.Valid(body) {
			httpReq.Body = string(body)
		} else {
			httpReq.RawBody = body
		}
	}

	attrs := &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: httpReq},
	}
	if principal != "" {
		attrs.Source = &authv3.AttributeContext_Peer{Principal: principal}
	}
	if len(ext) > 0 {
		attrs.ContextExtensions = ext
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// writeHTTPResponse answers Envoy in HTTP service mode with the decision
// in resp.
//
// An OK response (status code 0, or no status) is 200 with each header to
// set as a response header (added rather than replaced when its append is
// true), x-envoy-auth-headers-to-remove listing headers_to_remove, and
// response_headers_to_add as response headers too, except those named like
// a header to set or x-envoy-auth-headers-to-remove: in this mode the
// upstream request's headers and the agent's response headers share one
// set of names, and the upstream's win. Anything else denies:
// the denied response's status (403 when unset, or when it would not read
// as a denial: below 300 or above 599), its headers and its body. A nil
// response is a 403. Query-parameter mutations and dynamic metadata have no
// HTTP-mode form and are not sent.
func writeHTTPResponse(w http.ResponseWriter, resp *authv3.CheckResponse) {
	h := w.Header()
	if resp != nil && resp.GetStatus().GetCode() == int32(code.Code_OK) {
		ok := resp.GetOkResponse()
		// Upstream headers and the removal list own their names: a header
		// for the agent's response with the same name is left out, since
		// Envoy could not tell the two apart.
		reserved := map[string]bool{http.CanonicalHeaderKey(hdrAuthHeadersToRemove): true}
		for _, hv := range ok.GetHeaders() {
			setHeader(h, hv)
			reserved[http.CanonicalHeaderKey(hv.GetHeader().GetKey())] = true
		}
		if remove := ok.GetHeadersToRemove(); len(remove) > 0 {
			h.Set(hdrAuthHeadersToRemove, strings.Join(remove, ","))
		}
		for _, hv := range ok.GetResponseHeadersToAdd() {
			if reserved[http.CanonicalHeaderKey(hv.GetHeader().GetKey())] {
				continue
			}
			setHeader(h, hv)
		}
		w.WriteHeader(http.StatusOK)
		return
	}

	denied := resp.GetDeniedResponse()
	status := int(denied.GetStatus().GetCode())
	if status < 300 || status > 599 {
		status = http.StatusForbidden
	}
	for _, hv := range denied.GetHeaders() {
		setHeader(h, hv)
	}
	body := denied.GetBody()
	if body != "" {
		if _, ok := h["Content-Type"]; !ok {
			// Say nothing rather than let the server sniff a type.
			h["Content-Type"] = nil
		}
	}
	w.WriteHeader(status)
	if body != "" {
		_, _ = w.Write([]byte(body)) // Envoy has gone away; nothing to do
	}
}

// setHeader applies one HeaderValueOption to h: replaced, or added when
// its append flag is true. An empty name is skipped.
func setHeader(h http.Header, hv *corev3.HeaderValueOption) {
	key := hv.GetHeader().GetKey()
	if key == "" {
		return
	}
	value := hv.GetHeader().GetValue()
	if raw := hv.GetHeader().GetRawValue(); len(raw) > 0 {
		value = string(raw)
	}
	if hv.GetAppend().GetValue() {
		h.Add(key, value)
		return
	}
	h.Set(key, value)
}
