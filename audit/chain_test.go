package audit

import (
	"testing"
	"time"
)

// BenchmarkEncode is the writer's CPU per record: the record's JSON and the
// chain hash, for a typical allowed tools/call.
func BenchmarkEncode(b *testing.B) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	rec := Record{
		DecisionID: "01JNX3K4M5N6P7Q8R9S0T1V2W3", Time: at,
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Actors: []string{"agent-3"},
		Issuer: "https://idp.example", InboundCredential: "jwt",
		Request: Request{
			Protocol: "grpc", Method: "POST", Host: "tools.internal", Path: "/mcp",
			MCPMethod: "tools/call", MCPName: "search_issues",
			ArgumentsDigest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			EnvoyRequestID:  "6b8a0c2e-4d6f-8b0a-1c3e-5d7f9b1a3c5e",
		},
		PolicyRevision: "rev-1", Outcome: "allow", Status: 200, Reason: "tool allowed for agent",
		Token:         &Token{JTI: "jti-5c7e9d1f", Profile: "access_token", Audience: "mcp://tools", Scopes: []string{"tools.call"}, ExpiresAt: at, KeyID: "k1"},
		LatencyMicros: 180,
	}
	chain := newChainer()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		// As the writer does: one buffer reused for every record.
		buf, err = appendRecord(buf[:0], &rec)
		if err != nil {
			b.Fatal(err)
		}
		chain.next(genesis, buf)
	}
}
