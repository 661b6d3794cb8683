package extauthz

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// viaProtojson is opa-envoy-plugin's input.attributes: protojson, then
// encoding/json into map[string]any.
func viaProtojson(a *authv3.AttributeContext) (map[string]any, error) {
	b, err := protojson.Marshal(a)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// assertSameAsProtojson fails when attributesMap differs from protojson.
func assertSameAsProtojson(t testing.TB, a *authv3.AttributeContext) {
	t.Helper()
	want, err := viaProtojson(a)
	if err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if diff := cmp.Diff(want, attributesMap(a)); diff != "" {
		t.Fatalf("attributesMap differs from protojson (-protojson +attributesMap):\n%s", diff)
	}
}

func TestAttributesMapRichRequest(t *testing.T) {
	req := loadCheckRequest(t, "mcp_tools_call.json")
	assertSameAsProtojson(t, req.Attributes)
	// And the fixture really is rich: the fast paths were taken.
	got := attributesMap(req.Attributes)
	http := got["request"].(map[string]any)["http"].(map[string]any)
	if len(http["headers"].(map[string]any)) < 15 || http["size"] != "333" {
		t.Errorf("fixture headers %d, size %v", len(http["headers"].(map[string]any)), http["size"])
	}
	if got["metadataContext"] == nil || got["source"].(map[string]any)["address"] == nil {
		t.Error("fixture lost its metadata or source address")
	}
}

// everyField sets every field of the attribute context, including the
// ones that go through the protojson fallback.
func everyField() *authv3.AttributeContext {
	typed, _ := anypb.New(wrapperspb.String("typed"))
	meta, _ := structpb.NewStruct(map[string]any{"sub": "user-7", "n": 1.5, "ok": true, "none": nil, "list": []any{"a", 2.0, map[string]any{"k": "v"}}})
	return &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol: corev3.SocketAddress_UDP, Address: "10.0.0.1",
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
				ResolverName:  "dns", Ipv4Compat: true, NetworkNamespaceFilepath: "/run/netns/a",
			}}},
			Service:     "agent",
			Labels:      map[string]string{"app": "bot", "": "empty key"},
			Principal:   "spiffe://example.org/bot",
			Certificate: "-----BEGIN%20CERTIFICATE-----",
		},
		Destination: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_NamedPort{NamedPort: "https"},
			}}},
		},
		Request: &authv3.AttributeContext_Request{
			Time: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 120000000},
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "id", Method: "POST", Headers: map[string]string{"a": "1", "<html>": "&amp;\u2028"},
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "a", Value: "1"}, {Key: "b", RawValue: []byte{0, 1, 0xff}}, {}}},
				Path:      "/p?q", Host: "h", Scheme: "https", Query: "q", Fragment: "f",
				Size: -1, Protocol: "HTTP/1.1", Body: "{\"a\":1}", RawBody: []byte("raw\x00bytes"),
			},
		},
		ContextExtensions:    map[string]string{"resource": "mcp://tools"},
		MetadataContext:      &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"jwt": meta, "empty": {}}},
		RouteMetadataContext: &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{"t": typed}},
		TlsSession:           &authv3.AttributeContext_TLSSession{Sni: "tools.internal"},
	}
}

func TestAttributesMapEveryField(t *testing.T) {
	tests := map[string]*authv3.AttributeContext{
		"every field": everyField(),
		"nil":         nil,
		"empty":       {},
		"empty messages": {
			Source:               &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
			Destination:          &authv3.AttributeContext_Peer{},
			Request:              &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{}}},
			MetadataContext:      &corev3.Metadata{},
			RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}},
			TlsSession:           &authv3.AttributeContext_TLSSession{},
		},
		"pipe address": {
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/sock", Mode: 0o600}}}},
		},
		"internal address": {
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
				AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "l"}, EndpointId: "e",
			}}}},
		},
		"unknown enum value": {
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Protocol: 7}}}},
		},
		"timestamps": {Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{Seconds: -62135596800}}},
		"timestamp micros": {
			Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999999000}},
		},
		"timestamp nanos": {Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 1}}},
		"timestamp zero":  {Request: &authv3.AttributeContext_Request{Time: &timestamppb.Timestamp{}}},
		"large size":      {Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Size: math.MaxInt64}}},
	}
	for name, a := range tests {
		t.Run(name, func(t *testing.T) {
			assertSameAsProtojson(t, a)
		})
	}
}

// Where protojson refuses the whole message, attributesMap leaves out only
// the key it cannot render.
func TestAttributesMapLeavesOutWhatProtojsonRefuses(t *testing.T) {
	bad := &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{
			Time: &timestamppb.Timestamp{Seconds: 1, Nanos: -1},
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET"},
		},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"x": {Fields: map[string]*structpb.Value{"nan": structpb.NewNumberValue(math.NaN())}},
		}},
		RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"x": {Fields: map[string]*structpb.Value{"unset": {}}},
		}},
	}
	if _, err := viaProtojson(bad); err == nil {
		t.Fatal("protojson accepted the message; the test needs one it refuses")
	}
	want := map[string]any{"request": map[string]any{"http": map[string]any{"method": "GET"}}}
	if diff := cmp.Diff(want, attributesMap(bad)); diff != "" {
		t.Errorf("attributesMap: %s", diff)
	}
}

// randomAttributes builds an attribute context from r, choosing for each
// field whether to set it and with what: empty, ASCII, Unicode, characters
// JSON escapes, and the boundary values of numbers and timestamps.
func randomAttributes(r *rand.Rand) *authv3.AttributeContext {
	a := &authv3.AttributeContext{}
	if r.IntN(4) > 0 {
		a.Source = randomPeer(r)
	}
	if r.IntN(3) > 0 {
		a.Destination = randomPeer(r)
	}
	if r.IntN(6) > 0 {
		a.Request = &authv3.AttributeContext_Request{}
		if r.IntN(2) == 0 {
			a.Request.Time = randomTimestamp(r)
		}
		if r.IntN(8) > 0 {
			a.Request.Http = randomHTTP(r)
		}
	}
	if r.IntN(2) == 0 {
		a.ContextExtensions = randomStringMap(r)
	}
	if r.IntN(3) == 0 {
		a.MetadataContext = randomMetadata(r)
	}
	if r.IntN(3) == 0 {
		a.RouteMetadataContext = randomMetadata(r)
	}
	if r.IntN(3) == 0 {
		a.TlsSession = &authv3.AttributeContext_TLSSession{Sni: randomString(r)}
	}
	return a
}

var stringPool = []string{
	"", "a", "POST", "/mcp?x=1", "tools.internal:8443", "spiffe://example.org/ns/a/sa/b",
	"Jürgen", "日本語", "emoji 🦊", "quote \" backslash \\ slash /", "<script>&amp;</script>",
	"line\nbreak\ttab", "\u2028\u2029", "\x00\x01\x1f", "\u007f", "\ufffd", strings.Repeat("x", 300),
}

func randomString(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		// A fresh string of random runes.
		n := r.IntN(12)
		var b strings.Builder
		for range n {
			switch r.IntN(4) {
			case 0:
				b.WriteRune(rune(r.IntN(0x80)))
			case 1:
				b.WriteRune(rune(0x80 + r.IntN(0x780)))
			case 2:
				b.WriteRune(rune(0xe000 + r.IntN(0x1000)))
			default:
				b.WriteRune(rune(0x10000 + r.IntN(0x10000)))
			}
		}
		return b.String()
	}
	return stringPool[r.IntN(len(stringPool))]
}

func randomStringMap(r *rand.Rand) map[string]string {
	n := r.IntN(6)
	m := make(map[string]string, n)
	for range n {
		m[randomString(r)] = randomString(r)
	}
	return m
}

func randomBytes(r *rand.Rand) []byte {
	n := r.IntN(40)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func randomPeer(r *rand.Rand) *authv3.AttributeContext_Peer {
	p := &authv3.AttributeContext_Peer{}
	if r.IntN(3) > 0 {
		p.Address = randomAddress(r)
	}
	if r.IntN(2) == 0 {
		p.Service = randomString(r)
	}
	if r.IntN(2) == 0 {
		p.Labels = randomStringMap(r)
	}
	if r.IntN(2) == 0 {
		p.Principal = randomString(r)
	}
	if r.IntN(3) == 0 {
		p.Certificate = randomString(r)
	}
	return p
}

func randomAddress(r *rand.Rand) *corev3.Address {
	switch r.IntN(6) {
	case 0:
		return &corev3.Address{}
	case 1:
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: randomString(r), Mode: uint32(r.IntN(0o777))}}}
	case 2:
		return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{EndpointId: randomString(r)}}}
	}
	s := &corev3.SocketAddress{}
	if r.IntN(4) == 0 {
		s.Protocol = corev3.SocketAddress_Protocol(r.IntN(3))
	}
	if r.IntN(5) > 0 {
		s.Address = randomString(r)
	}
	switch r.IntN(4) {
	case 0:
		s.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(r.IntN(65536))}
	case 1:
		s.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: []uint32{0, 1, math.MaxUint32}[r.IntN(3)]}
	case 2:
		s.PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: randomString(r)}
	}
	if r.IntN(6) == 0 {
		s.ResolverName = randomString(r)
	}
	if r.IntN(6) == 0 {
		s.Ipv4Compat = true
	}
	if r.IntN(8) == 0 {
		s.NetworkNamespaceFilepath = randomString(r)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: s}}
}

func randomTimestamp(r *rand.Rand) *timestamppb.Timestamp {
	secs := []int64{0, 1, -1, 1700000000, minTimestampSeconds, maxTimestampSeconds, r.Int64N(maxTimestampSeconds)}[r.IntN(7)]
	nanos := []int32{0, 1, 1000, 1000000, 999999999, 120000000, 123456000, int32(r.IntN(1e9))}[r.IntN(8)]
	return &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
}

func randomHTTP(r *rand.Rand) *authv3.AttributeContext_HttpRequest {
	h := &authv3.AttributeContext_HttpRequest{}
	set := func() bool { return r.IntN(2) == 0 }
	if set() {
		h.Id = randomString(r)
	}
	if set() {
		h.Method = randomString(r)
	}
	if set() {
		h.Headers = randomStringMap(r)
	}
	if r.IntN(4) == 0 {
		hm := &corev3.HeaderMap{}
		for range r.IntN(5) {
			hv := &corev3.HeaderValue{}
			if set() {
				hv.Key = randomString(r)
			}
			if set() {
				hv.Value = randomString(r)
			} else if set() {
				hv.RawValue = randomBytes(r)
			}
			hm.Headers = append(hm.Headers, hv)
		}
		h.HeaderMap = hm
	}
	if set() {
		h.Path = randomString(r)
	}
	if set() {
		h.Host = randomString(r)
	}
	if r.IntN(4) == 0 {
		h.Scheme = randomString(r)
	}
	if r.IntN(5) == 0 {
		h.Query = randomString(r)
	}
	if r.IntN(5) == 0 {
		h.Fragment = randomString(r)
	}
	if set() {
		h.Size = []int64{-1, 0, 1, 333, math.MaxInt64, math.MinInt64, r.Int64()}[r.IntN(7)]
	}
	if set() {
		h.Protocol = randomString(r)
	}
	if set() {
		h.Body = randomString(r)
	}
	if r.IntN(4) == 0 {
		h.RawBody = randomBytes(r)
	}
	return h
}

func randomValue(r *rand.Rand, depth int) *structpb.Value {
	k := r.IntN(6)
	if depth > 2 {
		k = r.IntN(4)
	}
	switch k {
	case 0:
		return structpb.NewNullValue()
	case 1:
		return structpb.NewNumberValue([]float64{0, -0.0, 1, -1.5, 1e21, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, r.NormFloat64() * 1e6}[r.IntN(10)])
	case 2:
		return structpb.NewStringValue(randomString(r))
	case 3:
		return structpb.NewBoolValue(r.IntN(2) == 0)
	case 4:
		return structpb.NewStructValue(randomStruct(r, depth+1))
	default:
		list := &structpb.ListValue{}
		for range r.IntN(4) {
			list.Values = append(list.Values, randomValue(r, depth+1))
		}
		return structpb.NewListValue(list)
	}
}

func randomStruct(r *rand.Rand, depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range r.IntN(5) {
		s.Fields[randomString(r)] = randomValue(r, depth)
	}
	return s
}

func randomMetadata(r *rand.Rand) *corev3.Metadata {
	md := &corev3.Metadata{}
	if r.IntN(4) > 0 {
		md.FilterMetadata = map[string]*structpb.Struct{}
		for range r.IntN(3) + 1 {
			md.FilterMetadata[randomString(r)] = randomStruct(r, 0)
		}
	}
	if r.IntN(5) == 0 {
		typed, _ := anypb.New(wrapperspb.String(randomString(r)))
		md.TypedFilterMetadata = map[string]*anypb.Any{randomString(r): typed}
	}
	return md
}

func TestAttributesMapRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 3))
	for i := range 1000 {
		a := randomAttributes(r)
		if _, err := viaProtojson(a); err != nil {
			t.Fatalf("case %d: generator made a message protojson refuses: %v", i, err)
		}
		want, _ := viaProtojson(a)
		if diff := cmp.Diff(want, attributesMap(a)); diff != "" {
			t.Fatalf("case %d differs (-protojson +attributesMap):\n%s\nmessage: %v", i, diff, a)
		}
	}
}

func TestTimestampString(t *testing.T) {
	for _, tt := range []struct {
		secs  int64
		nanos int32
		want  string
	}{
		{0, 0, "1970-01-01T00:00:00Z"},
		{1700000000, 120000000, "2023-11-14T22:13:20.120Z"},
		{1700000000, 120001000, "2023-11-14T22:13:20.120001Z"},
		{1700000000, 120001001, "2023-11-14T22:13:20.120001001Z"},
		{minTimestampSeconds, 0, "0001-01-01T00:00:00Z"},
		{maxTimestampSeconds, 999999999, "9999-12-31T23:59:59.999999999Z"},
	} {
		got, ok := timestampString(&timestamppb.Timestamp{Seconds: tt.secs, Nanos: tt.nanos})
		if !ok || got != tt.want {
			t.Errorf("timestampString(%d, %d) = %q, %v; want %q", tt.secs, tt.nanos, got, ok, tt.want)
		}
	}
	for _, bad := range []*timestamppb.Timestamp{
		{Seconds: minTimestampSeconds - 1}, {Seconds: maxTimestampSeconds + 1}, {Nanos: -1}, {Nanos: 1e9},
	} {
		if got, ok := timestampString(bad); ok {
			t.Errorf("timestampString(%v) = %q, accepted", bad, got)
		}
	}
}

// BenchmarkAttributes compares attributesMap with the protojson round trip
// it replaces, on the realistic MCP request. Read the two results as a
// ratio.
func BenchmarkAttributes(b *testing.B) {
	req := loadCheckRequest(b, "mcp_tools_call.json")
	b.Run("attributesMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = attributesMap(req.Attributes)
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := viaProtojson(req.Attributes); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestRedactValue(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer eyJhbGciOi.eyJzdWIi.c2ln": "Bearer [redacted]",
		"bearer\ttoken":                   "bearer [redacted]",
		"  Basic dXNlcjpwdw==":            "Basic [redacted]",
		"Bearer A,Bearer B":               "Bearer [redacted]",
		"eyJhbGciOi.eyJzdWIi.c2ln":        "[redacted]",
		"Bearer":                          "[redacted]",
		"":                                "[redacted]",
		"to\"ken value":                   "[redacted]",
	} {
		if got := redactValue(in); got != want {
			t.Errorf("redactValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// Redaction changes only credential headers; everything else stays as
// protojson renders it.
func TestRedactCredentialsKeepsTheRest(t *testing.T) {
	a := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Headers: map[string]string{"authorization": "Bearer secret", "x-other": "Bearer visible"},
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Authorization", RawValue: []byte("Bearer secret")},
			{Key: "x-other", RawValue: []byte("Bearer visible")},
		}},
	}}}
	got := attributesMap(a)
	redactCredentials(got)
	want, err := viaProtojson(a)
	if err != nil {
		t.Fatal(err)
	}
	want["request"].(map[string]any)["http"].(map[string]any)["headers"].(map[string]any)["authorization"] = "Bearer [redacted]"
	want["request"].(map[string]any)["http"].(map[string]any)["headerMap"].(map[string]any)["headers"].([]any)[0].(map[string]any)["rawValue"] =
		base64.StdEncoding.EncodeToString([]byte("Bearer [redacted]"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	redactCredentials(map[string]any{"request": "not a map"}) // must not panic
}
