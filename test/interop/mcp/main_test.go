package mcp_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves a goroutine behind: the proxy,
// its gRPC connection and the MCP server all stop with their test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
