package policies_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/writ-dev/writ/policies"
)

// FuzzDecision feeds arbitrary JSON documents as the policy's decision
// (the testdata/echo policy returns the request body). A document either
// converts, allowing only when it says "allow": true, or fails with
// ErrDecisionType; it never panics and never allows on an error.
func FuzzDecision(f *testing.F) {
	seeds, err := filepath.Glob("testdata/fuzz_decisions/*.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		bs, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bs)
	}
	e := policies.NewEngine(policies.Options{})
	if _, err := e.LoadDir(f.Context(), "testdata/echo"); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var body any
		if err := json.Unmarshal(doc, &body); err != nil || body == nil {
			return
		}
		d, _, err := e.Decide(t.Context(), &policies.Input{ParsedBody: body})
		if err != nil {
			if !errors.Is(err, policies.ErrDecisionType) {
				t.Fatalf("error = %v, want ErrDecisionType", err)
			}
			if d.Allow {
				t.Fatal("allowed on an error")
			}
			return
		}
		obj, ok := body.(map[string]any)
		if !ok || obj["allow"] != d.Allow {
			t.Fatalf("decision %+v from %s", d, doc)
		}
		if d.TTL < 0 || (d.Approval != nil && d.Approval.TTL < 0) {
			t.Fatalf("negative TTL from %s", doc)
		}
	})
}
