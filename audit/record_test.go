package audit_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/writ-dev/writ/audit"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// fullRecord sets every field of a Record.
func fullRecord() audit.Record {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return audit.Record{
		DecisionID:        "01JNX3K4M5N6P7Q8R9S0T1V2W3",
		Time:              at,
		Dev:               true,
		User:              "user-7",
		Agent:             "agent-3",
		Tenant:            "tenant-a",
		Actors:            []string{"agent-3", "orchestrator-1"},
		Issuer:            "https://idp.example",
		SPIFFEID:          "spiffe://example.org/agent-3",
		InboundCredential: "jwt",
		Request: audit.Request{
			Protocol:        "grpc",
			Method:          "POST",
			Host:            "tickets.internal",
			Path:            "/mcp",
			MCPMethod:       "tools/call",
			MCPName:         "create_refund",
			ArgumentsDigest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			EnvoyRequestID:  "6b8a0c2e-4d6f-8b0a-1c3e-5d7f9b1a3c5e",
			Resource:        "mcp://tickets",
		},
		PolicyRevision: "rev-2026-03-01.1",
		Outcome:        "allow",
		Status:         200,
		Reason:         "refund approved by finance",
		Approval: &audit.Approval{
			ID:        "apr-42",
			Approver:  "user-9",
			Outcome:   "approved",
			Requested: at.Add(-2 * time.Minute),
			Decided:   at.Add(-time.Minute),
		},
		Token: &audit.Token{
			JTI:       "jti-5c7e9d1f",
			Profile:   "access_token",
			Audience:  "https://tickets.internal",
			Scopes:    []string{"tickets:write"},
			ExpiresAt: at.Add(time.Minute),
			KeyID:     "key-2026-03",
			Reused:    true,
		},
		Credential: &audit.Credential{
			Backend: "salesforce",
			Ref:     "users/user-7",
			Version: "3",
			Error:   "refreshed after a stale version",
		},
		LatencyMicros: 1234,
	}
}

// TestRecordGolden pins the stored form of a record: the JSON with
// exactly the documented keys, and nothing else (no token or credential
// value can appear because there is no key for one).
func TestRecordGolden(t *testing.T) {
	db, _ := openDB(t)
	l := openLog(t, db, audit.Options{})
	appendAll(t, l, fullRecord())
	if err := l.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var stored string
	if err := db.QueryRowContext(t.Context(), `SELECT record FROM evidence WHERE seq = 1`).Scan(&stored); err != nil {
		t.Fatalf("read record: %v", err)
	}
	got := []byte(stored + "\n")
	path := filepath.Join("testdata", "record.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored record differs from %s (run with -update if the change is intended)\ngot:  %s\nwant: %s", path, got, want)
	}
}
