package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// checkCommand sends one MCP tools/call Check to a running writ, as Envoy
// would, and prints the decision, the decision id and the minted token's
// claims after verifying its signature with writ's published JWKS.
func checkCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("check")
	addr := fs.String("addr", "127.0.0.1:9191", "writ's ext_authz gRPC address")
	api := fs.String("api", "http://127.0.0.1:8080", "writ's API base URL (for the JWKS)")
	tool := fs.String("tool", "", "the MCP tool to call (tools/call params.name)")
	argsJSON := fs.String("args", "{}", "the tool's arguments, a JSON object")
	token := fs.String("token", "", "the agent's bearer token (default: $WRIT_TOKEN; none when both are empty)")
	resource := fs.String("resource", "mcp://tools", "the route's resource (context extension)")
	tenant := fs.String("tenant", "", "the route's tenant (context extension)")
	sensitivity := fs.String("sensitivity", "", "the route's sensitivity (context extension), e.g. high")
	host := fs.String("host", "tools.internal", "the upstream host the agent calls")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tool == "" {
		return fmt.Errorf("%w: check needs --tool", errUsage)
	}
	var arguments map[string]any
	if err := json.Unmarshal([]byte(*argsJSON), &arguments); err != nil {
		return fmt.Errorf("--args must be a JSON object: %v", err)
	}
	bearer := *token
	if bearer == "" {
		bearer = os.Getenv("WRIT_TOKEN")
	}
	req, err := toolCallCheck(*tool, arguments, bearer, *host, map[string]string{
		"resource": *resource, "tenant": *tenant, "sensitivity": *sensitivity, "mcp": "true",
	})
	if err != nil {
		return err
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(callCtx, req)
	if err != nil {
		return fmt.Errorf("check %s: %w", *addr, err)
	}

	if ok := resp.GetOkResponse(); ok != nil {
		var decisionID, minted string
		for _, h := range ok.GetHeaders() {
			switch h.GetHeader().GetKey() {
			case "x-writ-decision-id":
				decisionID = h.GetHeader().GetValue()
			case "authorization":
				minted = strings.TrimPrefix(h.GetHeader().GetValue(), "Bearer ")
			case "txn-token":
				minted = h.GetHeader().GetValue()
			}
		}
		fmt.Fprintf(stdout, "decision: ALLOW\ndecision_id: %s\nremoved upstream: %s\n", decisionID, strings.Join(ok.GetHeadersToRemove(), ", "))
		if minted == "" {
			fmt.Fprintln(stdout, "writ token: none (anonymous allow)")
			return nil
		}
		claims, err := verifyMinted(ctx, *api, minted)
		if err != nil {
			return fmt.Errorf("the minted token did not verify against %s/.well-known/jwks.json: %w", *api, err)
		}
		fmt.Fprintf(stdout, "writ token: verified against %s/.well-known/jwks.json\n", *api)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(claims)
	}
	denied := resp.GetDeniedResponse()
	fmt.Fprintf(stdout, "decision: DENY\nstatus: %d\n", denied.GetStatus().GetCode())
	for _, h := range denied.GetHeaders() {
		fmt.Fprintf(stdout, "%s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	fmt.Fprintf(stdout, "body: %s\n", denied.GetBody())
	return errFailed
}

// toolCallCheck builds the CheckRequest Envoy sends for an MCP tools/call.
func toolCallCheck(tool string, arguments map[string]any, bearer, host string, ext map[string]string) (*authv3.CheckRequest, error) {
	body, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": tool, "arguments": arguments},
	})
	if err != nil {
		return nil, err
	}
	headers := map[string]string{
		":method": "POST", ":path": "/mcp", ":authority": host,
		"content-type": "application/json", "mcp-method": "tools/call", "mcp-name": tool,
	}
	if bearer != "" {
		headers["authorization"] = "Bearer " + bearer
	}
	for k, v := range ext {
		if v == "" {
			delete(ext, k)
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: fmt.Sprintf("writ-check-%d", time.Now().UnixNano()), Method: "POST", Path: "/mcp", Host: host, Scheme: "https",
			Protocol: "HTTP/1.1", Headers: headers, RawBody: body, Size: int64(len(body)),
		}},
		ContextExtensions: ext,
	}}, nil
}

// verifyMinted checks the writ token's signature with the served JWKS and
// returns its claims.
func verifyMinted(ctx context.Context, api, token string) (jwt.MapClaims, error) {
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{strings.TrimSuffix(api, "/") + "/.well-known/jwks.json"})
	if err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, kf.Keyfunc, jwt.WithValidMethods([]string{"ES256", "RS256", "EdDSA"})); err != nil {
		return nil, err
	}
	return claims, nil
}
