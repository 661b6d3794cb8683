package policies_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/writ-dev/writ/policies"
)

func ExampleEngine() {
	ctx := context.Background()
	engine := policies.NewEngine(policies.Options{Logger: slog.New(slog.DiscardHandler)})

	// A policy directory would be loaded with engine.LoadDir; a bundle in
	// memory works the same way.
	_, err := engine.LoadBundle(ctx, policies.Bundle{
		Modules: map[string]string{"authz.rego": `package writ.authz

default decision := {"allow": false, "reason": "tool not allowed"}

decision := {"allow": true, "reason": "tool allowed for agent", "scopes": [scope], "ttl": "60s"} if {
	input.mcp.name in data.allowed_tools[input.identity.agent]
	scope := sprintf("mcp:tools:%s", [input.mcp.name])
}
`},
		Data: map[string]any{"allowed_tools": map[string]any{"research-bot": []any{"search_issues"}}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}

	for _, tool := range []string{"search_issues", "delete_repo"} {
		decision, _, err := engine.Decide(ctx, &policies.Input{
			Identity: &policies.Identity{User: "alice", Agent: "research-bot"},
			MCP:      &policies.MCP{Method: "tools/call", Name: tool},
		})
		if err != nil {
			fmt.Println("deny:", err)
			continue
		}
		fmt.Println(tool, decision.Allow, decision.Reason, decision.Scopes, decision.TTL)
	}
	// Output:
	// search_issues true tool allowed for agent [mcp:tools:search_issues] 1m0s
	// delete_repo false tool not allowed [] 0s
}

func ExampleTest() {
	// `writ policy test DIR` prints the report to the terminal.
	passed, failed, err := policies.Test(context.Background(), "testdata/regotests", io.Discard, false)
	fmt.Println(passed, "passed,", failed, "failed,", err)
	// Output:
	// 2 passed, 1 failed, <nil>
}
