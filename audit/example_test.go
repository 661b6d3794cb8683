package audit_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/writ-dev/writ/audit"
	"github.com/writ-dev/writ/store"
)

func ExampleLog() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "writ-audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	evidence, err := audit.Open(ctx, db, audit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- evidence.Run(runCtx) }()

	// On the Check path: queue the record; an error means deny.
	err = evidence.Append(audit.Record{
		DecisionID: "dec-1",
		User:       "user-7",
		Agent:      "agent-3",
		Request:    audit.Request{Protocol: "grpc", MCPMethod: "tools/call", MCPName: "search_issues"},
		Outcome:    "allow",
		Status:     200,
		Reason:     "tool allowed for agent",
	})
	if err != nil {
		log.Fatal(err)
	}

	// On shutdown: stop the writer, then write what is still queued.
	stop()
	<-done
	if err := evidence.Close(ctx); err != nil {
		log.Fatal(err)
	}

	rec, stored, err := audit.Find(ctx, db, "dec-1")
	if err != nil {
		log.Fatal(err)
	}
	res, err := audit.Verify(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written:", evidence.Written())
	fmt.Println("found:", rec.DecisionID, rec.Outcome, "at seq", stored.Seq)
	fmt.Println("chain ok:", res.OK, "records:", res.Records)
	// Output:
	// written: 1
	// found: dec-1 allow at seq 1
	// chain ok: true records: 1
}
