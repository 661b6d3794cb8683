package extauthz

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// attributesMap renders a CheckRequest's attributes exactly as
// opa-envoy-plugin's input.attributes: protojson with default options
// (lowerCamelCase names, zero values left out, int64 as strings, bytes as
// standard Base64, Timestamps in RFC 3339), decoded with encoding/json into
// map[string]any (numbers as float64).
//
// It runs on every request, so the fields Envoy sends are mapped one by one
// without going through JSON text; anything else (pipe and internal
// addresses, typed metadata, Struct values protojson would refuse) goes
// through protojson. Where protojson would fail for the whole message (a
// Timestamp out of range, a Struct value with no kind or a NaN), that one
// key is left out instead.
func attributesMap(a *authv3.AttributeContext) map[string]any {
	m := make(map[string]any, 8)
	if a == nil {
		return m
	}
	if a.Source != nil {
		m["source"] = peerMap(a.Source)
	}
	if a.Destination != nil {
		m["destination"] = peerMap(a.Destination)
	}
	if a.Request != nil {
		m["request"] = requestMap(a.Request)
	}
	if len(a.ContextExtensions) > 0 {
		m["contextExtensions"] = stringMap(a.ContextExtensions)
	}
	if a.MetadataContext != nil {
		if v, ok := metadataValue(a.MetadataContext); ok {
			m["metadataContext"] = v
		}
	}
	if a.RouteMetadataContext != nil {
		if v, ok := metadataValue(a.RouteMetadataContext); ok {
			m["routeMetadataContext"] = v
		}
	}
	if a.TlsSession != nil {
		t := make(map[string]any, 1)
		if a.TlsSession.Sni != "" {
			t["sni"] = a.TlsSession.Sni
		}
		m["tlsSession"] = t
	}
	return m
}

func stringMap(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func peerMap(p *authv3.AttributeContext_Peer) map[string]any {
	m := make(map[string]any, 2)
	if p.Address != nil {
		if v, ok := addressValue(p.Address); ok {
			m["address"] = v
		}
	}
	if p.Service != "" {
		m["service"] = p.Service
	}
	if len(p.Labels) > 0 {
		m["labels"] = stringMap(p.Labels)
	}
	if p.Principal != "" {
		m["principal"] = p.Principal
	}
	if p.Certificate != "" {
		m["certificate"] = p.Certificate
	}
	return m
}

func addressValue(a *corev3.Address) (any, bool) {
	switch x := a.Address.(type) {
	case nil:
		return map[string]any{}, true
	case *corev3.Address_SocketAddress:
		if x.SocketAddress != nil {
			return map[string]any{"socketAddress": socketAddressMap(x.SocketAddress)}, true
		}
	}
	return protoJSONValue(a)
}

func socketAddressMap(s *corev3.SocketAddress) map[string]any {
	m := make(map[string]any, 2)
	if s.Protocol != 0 {
		m["protocol"] = enumValue(int32(s.Protocol), corev3.SocketAddress_Protocol_name)
	}
	if s.Address != "" {
		m["address"] = s.Address
	}
	switch p := s.PortSpecifier.(type) {
	case *corev3.SocketAddress_PortValue:
		m["portValue"] = float64(p.PortValue)
	case *corev3.SocketAddress_NamedPort:
		m["namedPort"] = p.NamedPort
	}
	if s.ResolverName != "" {
		m["resolverName"] = s.ResolverName
	}
	if s.Ipv4Compat {
		m["ipv4Compat"] = true
	}
	if s.NetworkNamespaceFilepath != "" {
		m["networkNamespaceFilepath"] = s.NetworkNamespaceFilepath
	}
	return m
}

// enumValue is protojson's rendering of an enum: its name, or its number
// when the number has no name.
func enumValue(n int32, names map[int32]string) any {
	if name, ok := names[n]; ok {
		return name
	}
	return float64(n)
}

func requestMap(r *authv3.AttributeContext_Request) map[string]any {
	m := make(map[string]any, 2)
	if r.Time != nil {
		if s, ok := timestampString(r.Time); ok {
			m["time"] = s
		}
	}
	if r.Http != nil {
		m["http"] = httpRequestMap(r.Http)
	}
	return m
}

func httpRequestMap(h *authv3.AttributeContext_HttpRequest) map[string]any {
	m := make(map[string]any, 8)
	if h.Id != "" {
		m["id"] = h.Id
	}
	if h.Method != "" {
		m["method"] = h.Method
	}
	if len(h.Headers) > 0 {
		m["headers"] = stringMap(h.Headers)
	}
	if h.HeaderMap != nil {
		m["headerMap"] = headerMapValue(h.HeaderMap)
	}
	if h.Path != "" {
		m["path"] = h.Path
	}
	if h.Host != "" {
		m["host"] = h.Host
	}
	if h.Scheme != "" {
		m["scheme"] = h.Scheme
	}
	if h.Query != "" {
		m["query"] = h.Query
	}
	if h.Fragment != "" {
		m["fragment"] = h.Fragment
	}
	if h.Size != 0 {
		m["size"] = strconv.FormatInt(h.Size, 10)
	}
	if h.Protocol != "" {
		m["protocol"] = h.Protocol
	}
	if h.Body != "" {
		m["body"] = h.Body
	}
	if len(h.RawBody) > 0 {
		m["rawBody"] = base64.StdEncoding.EncodeToString(h.RawBody)
	}
	return m
}

func headerMapValue(hm *corev3.HeaderMap) map[string]any {
	m := make(map[string]any, 1)
	if len(hm.Headers) == 0 {
		return m
	}
	list := make([]any, len(hm.Headers))
	for i, hv := range hm.Headers {
		e := make(map[string]any, 2)
		if hv != nil {
			if hv.Key != "" {
				e["key"] = hv.Key
			}
			if hv.Value != "" {
				e["value"] = hv.Value
			}
			if len(hv.RawValue) > 0 {
				e["rawValue"] = base64.StdEncoding.EncodeToString(hv.RawValue)
			}
		}
		list[i] = e
	}
	m["headers"] = list
	return m
}

// The range protojson accepts for a Timestamp: 0001-01-01 to 9999-12-31.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// timestampString formats a Timestamp as protojson does: RFC 3339 in UTC
// with 0, 3, 6 or 9 fractional digits.
func timestampString(ts *timestamppb.Timestamp) (string, bool) {
	secs, nanos := ts.GetSeconds(), ts.GetNanos()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos >= 1e9 {
		return "", false
	}
	var buf [40]byte
	b := time.Unix(secs, int64(nanos)).UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.000000000")
	switch {
	case nanos == 0:
		b = b[:len(b)-10]
	case nanos%1e6 == 0:
		b = b[:len(b)-6]
	case nanos%1e3 == 0:
		b = b[:len(b)-3]
	}
	b = append(b, 'Z')
	return string(b), true
}

// metadataValue renders envoy.config.core.v3.Metadata. Filter metadata
// (Struct values, where Envoy puts verified JWT payloads) is mapped
// directly; typed filter metadata (Any values) goes through protojson.
func metadataValue(md *corev3.Metadata) (any, bool) {
	if len(md.TypedFilterMetadata) > 0 {
		return protoJSONValue(md)
	}
	m := make(map[string]any, 1)
	if len(md.FilterMetadata) == 0 {
		return m, true
	}
	fm := make(map[string]any, len(md.FilterMetadata))
	for k, s := range md.FilterMetadata {
		if s == nil {
			return protoJSONValue(md)
		}
		v, ok := structMap(s)
		if !ok {
			return protoJSONValue(md)
		}
		fm[k] = v
	}
	m["filterMetadata"] = fm
	return m, true
}

func structMap(s *structpb.Struct) (map[string]any, bool) {
	m := make(map[string]any, len(s.Fields))
	for k, v := range s.Fields {
		x, ok := structValue(v)
		if !ok {
			return nil, false
		}
		m[k] = x
	}
	return m, true
}

// structValue converts a google.protobuf.Value; false when protojson would
// refuse it (no kind set, NaN or infinite number) or its shape is unusual
// enough to leave to protojson.
func structValue(v *structpb.Value) (any, bool) {
	if v == nil {
		return nil, false
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_NullValue:
		return nil, true
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return nil, false
		}
		return k.NumberValue, true
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_BoolValue:
		return k.BoolValue, true
	case *structpb.Value_StructValue:
		if k.StructValue == nil {
			return nil, false
		}
		return structMap(k.StructValue)
	case *structpb.Value_ListValue:
		if k.ListValue == nil {
			return nil, false
		}
		list := make([]any, len(k.ListValue.Values))
		for i, e := range k.ListValue.Values {
			x, ok := structValue(e)
			if !ok {
				return nil, false
			}
			list[i] = x
		}
		return list, true
	}
	return nil, false
}

// protoJSONValue is the slow path: protojson, then encoding/json.
func protoJSONValue(msg proto.Message) (any, bool) {
	b, err := protojson.Marshal(msg)
	if err != nil {
		return nil, false
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, false
	}
	return v, true
}

// credentialHeaders are the request headers that carry the agent's own
// credential. Their values never reach policy: writ verifies the bearer
// token itself and gives policy the verified identity instead.
var credentialHeaders = map[string]bool{
	headerAuthorization:      true,
	headerProxyAuthorization: true,
	headerTxnToken:           true,
}

// redactedCredential is what policy sees in place of a credential.
const (
	redactedCredential = "[redacted]"
	redactedBearer     = "Bearer " + redactedCredential
)

// redactCredentials replaces the values of credential headers in attributes
// (request.http.headers and request.http.headerMap, as attributesMap builds
// them) with the scheme and "[redacted]": "Bearer eyJ..." becomes
// "Bearer [redacted]", a value without a scheme "[redacted]". A rule that
// asks whether a bearer token was sent keeps working; a rule that decodes
// the token itself no longer finds one, and fails closed.
func redactCredentials(attributes map[string]any) {
	req, _ := attributes["request"].(map[string]any)
	h, _ := req["http"].(map[string]any)
	if h == nil {
		return
	}
	if headers, ok := h["headers"].(map[string]any); ok {
		for name, v := range headers {
			if s, ok := v.(string); ok && credentialHeaders[lowerASCII(name)] {
				headers[name] = redactValue(s)
			}
		}
	}
	hm, _ := h["headerMap"].(map[string]any)
	list, _ := hm["headers"].([]any)
	for _, e := range list {
		entry, ok := e.(map[string]any)
		if !ok {
			continue
		}
		if key, _ := entry["key"].(string); !credentialHeaders[lowerASCII(key)] {
			continue
		}
		if s, ok := entry["value"].(string); ok {
			entry["value"] = redactValue(s)
		}
		if s, ok := entry["rawValue"].(string); ok {
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				raw = nil
			}
			entry["rawValue"] = base64.StdEncoding.EncodeToString([]byte(redactValue(string(raw))))
		}
	}
}

// redactValue keeps an auth-scheme (a token of letters, digits and
// "-._~+/" followed by white space) and replaces the rest.
func redactValue(v string) string {
	v = strings.TrimLeft(v, " \t")
	i := 0
	for i < len(v) && isSchemeByte(v[i]) {
		i++
	}
	if i > 0 && i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		if v[:i] == "Bearer" {
			return redactedBearer // the common case, without an allocation
		}
		return v[:i] + " " + redactedCredential
	}
	return redactedCredential
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
}
