package approvals_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/writ-dev/writ/approvals"
	"github.com/writ-dev/writ/store"
)

func ExampleStore_Gate() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-example")
	defer os.RemoveAll(dir)
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	s, err := approvals.Open(ctx, db, approvals.Options{
		OnEvent: func(ev approvals.Event) { fmt.Println("event:", ev.Kind, ev.Approver+ev.DecisionID) },
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	call := approvals.Call{
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Resource: "mcp://payments", Action: "refund",
		ArgumentsSHA256: "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
		DecisionID:      "dec-1",
	}
	req := approvals.Requirement{BindingMessage: "Refund $120 to ACME?", Approvers: []string{"group:finance"}}

	res, _ := s.Gate(ctx, call, req)
	fmt.Println(res.Status, res.ExpiresIn, res.Interval)

	_ = s.Approve(ctx, res.ID, "user:alice")

	call.DecisionID = "dec-2" // the retry is a new decision
	res, _ = s.Gate(ctx, call, req)
	fmt.Println(res.Status, res.Approver)

	call.DecisionID = "dec-3"
	res, _ = s.Gate(ctx, call, req)
	fmt.Println(res.Status)
	// Output:
	// event: opened dec-1
	// pending 10m0s 5s
	// event: approved user:alice
	// event: consumed dec-2
	// approved user:alice
	// event: opened dec-3
	// pending
}

func ExampleVerifyWebhook() {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"id":"abc"}`)
	sent := time.Unix(1772366400, 0)
	header := approvals.SignWebhook(secret, sent, body) // what writ sends as Writ-Signature

	// The receiver checks the raw body against the header.
	fmt.Println(approvals.VerifyWebhook(secret, header, body, sent.Add(time.Minute), 5*time.Minute))
	fmt.Println(approvals.VerifyWebhook(secret, header, []byte(`{"id":"abd"}`), sent.Add(time.Minute), 5*time.Minute))
	fmt.Println(approvals.VerifyWebhook(secret, header, body, sent.Add(time.Hour), 5*time.Minute))
	// Output:
	// <nil>
	// approvals: webhook signature does not match
	// approvals: webhook signature timestamp outside tolerance
}

func ExampleFingerprint() {
	fp := approvals.Fingerprint(approvals.Call{
		User: "user-7", Agent: "agent-3", Tenant: "tenant-a", Resource: "mcp://payments", Action: "refund",
		ArgumentsSHA256: "1111111111111111111111111111111111111111111111111111111111111111",
	})
	fmt.Println(fp)
	// Output: d16945a91cd0c59de1e5de81b73e67c96b0e6a1d683921ca241419f7cdf567fd
}
