package agents_test

import (
	"context"
	"fmt"
	"os"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/store"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "writ-agents")
	defer os.RemoveAll(dir)
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	reg, err := agents.Open(ctx, db, agents.Options{})
	if err != nil {
		panic(err)
	}
	_ = reg.Register(ctx, agents.Agent{ClientID: "research-bot", Owner: "alice", Tenant: "acme"})
	_ = reg.Suspend(ctx, "research-bot", "user:bob", "leaking data")
	fmt.Println(reg.Status(ctx, "research-bot"))
	// Output: suspended true
}
