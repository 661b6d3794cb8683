# The policy the MCP interop tests run writ with.
#
# The built-in policy allows tools/call only for a delegated caller (a user
# and an agent). Here an agent acting as itself — a client_credentials
# token — may call tools too, provided its token carries the resource's
# tools.call scope and it belongs to the route's tenant:
#
#   1. No verified identity: deny.
#   2. The route's tenant differs from the identity's: deny.
#   3. MCP session methods (initialize, notifications/initialized, ping,
#      tools/list): allow with scope "mcp:session".
#   4. tools/call by an agent (acting as itself or for a user) whose token
#      has the scope "tools.call": allow with scope "mcp:tools:<name>".
#   5. Anything else: deny.
package writ.authz

default decision := {"allow": false, "reason": "no rule allowed this request"}

decision := {"allow": false, "reason": "no verified identity"} if {
	not input.identity
} else := {"allow": false, "reason": "tenant mismatch"} if {
	not input.identity.tenant == input.resource.tenant
} else := {
	"allow": true,
	"reason": "MCP session method allowed",
	"scopes": ["mcp:session"],
	"audience": input.resource.id,
	"ttl": "60s",
} if {
	input.mcp.method in {"initialize", "notifications/initialized", "ping", "tools/list"}
} else := {
	"allow": true,
	"reason": "tool call allowed by the tools.call scope",
	"scopes": [sprintf("mcp:tools:%s", [urlquery.encode(input.mcp.name)])],
	"audience": input.resource.id,
	"ttl": "60s",
} if {
	input.mcp.method == "tools/call"
	input.mcp.name != ""
	input.identity.agent != ""
	"tools.call" in input.identity.scopes
}
