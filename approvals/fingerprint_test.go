package approvals_test

import (
	"testing"

	"github.com/writ-dev/writ/approvals"
)

func TestFingerprintChangesWithEveryField(t *testing.T) {
	base := refund()
	want := approvals.Fingerprint(base)
	for name, change := range map[string]func(*approvals.Call){
		"user":      func(c *approvals.Call) { c.User = "user-8" },
		"agent":     func(c *approvals.Call) { c.Agent = "agent-4" },
		"tenant":    func(c *approvals.Call) { c.Tenant = "tenant-b" },
		"resource":  func(c *approvals.Call) { c.Resource = "mcp://tickets" },
		"action":    func(c *approvals.Call) { c.Action = "charge" },
		"arguments": func(c *approvals.Call) { c.ArgumentsSHA256 = digestB },
		"no args":   func(c *approvals.Call) { c.ArgumentsSHA256 = "" },
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			change(&c)
			if got := approvals.Fingerprint(c); got == want {
				t.Errorf("fingerprint unchanged when %s changes", name)
			}
		})
	}
	c := base
	c.DecisionID = "dec-other"
	if approvals.Fingerprint(c) != want {
		t.Error("the decision id changed the fingerprint")
	}
}

func TestFingerprintIsUnambiguous(t *testing.T) {
	// Moving bytes between adjacent fields must change the fingerprint: a
	// plain join would map all of these to the same string.
	calls := []approvals.Call{
		{User: "ab", Agent: "c"},
		{User: "a", Agent: "bc"},
		{User: "a", Agent: "", Tenant: "bc"},
		{User: "a|b", Agent: "c"},
		{User: "a", Agent: "b|c"},
		{User: "", Agent: "abc"},
	}
	seen := map[string]int{}
	for i, c := range calls {
		fp := approvals.Fingerprint(c)
		if j, dup := seen[fp]; dup {
			t.Errorf("calls %d and %d share fingerprint %s", j, i, fp)
		}
		seen[fp] = i
	}
}

func TestFingerprintIsStable(t *testing.T) {
	// Stored requests are found by fingerprint: the encoding must not drift
	// between releases. The value was computed independently (Python
	// hashlib over the documented length-prefixed encoding).
	const want = "d16945a91cd0c59de1e5de81b73e67c96b0e6a1d683921ca241419f7cdf567fd"
	if got := approvals.Fingerprint(refund()); got != want {
		t.Errorf("Fingerprint(refund()) = %s, want %s", got, want)
	}
}
