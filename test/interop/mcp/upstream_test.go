package mcp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// upstream is a real MCP server (the Go MCP SDK, streamable HTTP) with one
// tool, echo, which answers with its text argument. It remembers the
// Authorization header of every request that reached it.
type upstream struct {
	srv *httptest.Server

	mu             sync.Mutex
	authorizations []string
}

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to echo"`
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "echo-upstream", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "Answers with its text."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	// Stateless with JSON responses: each POST is answered on its own, and
	// the optional GET stream is refused with 405.
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.authorizations = append(u.authorizations, r.Header.Get("Authorization"))
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// seen returns the Authorization headers upstream received so far.
func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.authorizations...)
}
