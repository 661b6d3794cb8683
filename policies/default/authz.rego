# writ's built-in policy, served when no policies directory is configured.
#
# It answers at data.writ.authz.decision, in this order:
#
#   1. No verified identity (input.identity absent): deny, "no verified identity".
#   2. A route that names a tenant (input.resource.tenant) called by an
#      identity of another tenant, or of none: deny, "tenant mismatch".
#   3. tools/call of a tool listed in data.writ.denied_tools (empty unless a
#      data file sets it, e.g. {"writ": {"denied_tools": ["delete_repo"]}}):
#      deny, "tool is denied by policy".
#   4. MCP session methods (initialize, notifications/initialized, ping,
#      tools/list, resources/list, prompts/list) from any verified identity:
#      allow with scope "mcp:session".
#   5. tools/call, resources/read or prompts/get from a delegated caller (both
#      identity.user and identity.agent set) on a resource whose sensitivity
#      is "high": not allowed until a human approves ("approval required for a
#      high-sensitivity resource", with a binding message and a 10m approval
#      lifetime). Once input.approval says "approved" the call is allowed; an
#      approval that was "denied" denies it.
#   6. tools/call, resources/read or prompts/get from a delegated caller:
#      allow with the single scope "mcp:<tools|resources|prompts>:<name>",
#      audience input.resource.id (or "mcp://tools"), for 60 seconds. The
#      name is query-escaped (urlquery.encode: letters, digits and "-_.~"
#      stay, a space becomes "+", every other byte "%XX"), so the scope is
#      one RFC 6749 scope-token whatever the name: "search_issues" gives
#      "mcp:tools:search_issues", "file:///notes.md" gives
#      "mcp:resources:file%3A%2F%2F%2Fnotes.md".
#   7. Anything else: deny, "no rule allowed this request".
#
# Copy this file into a policies directory to change it; `writ policy test`
# runs the tests beside it.
package writ.authz

default decision := {"allow": false, "reason": "no rule allowed this request"}

decision := {"allow": false, "reason": "no verified identity"} if {
	not input.identity
} else := {"allow": false, "reason": "tenant mismatch"} if {
	tenant_mismatch
} else := {"allow": false, "reason": "tool is denied by policy"} if {
	input.mcp.method == "tools/call"
	input.mcp.name in data.writ.denied_tools
} else := {
	"allow": true,
	"reason": "MCP session method allowed",
	"scopes": ["mcp:session"],
	"audience": audience,
	"ttl": "60s",
} if {
	input.mcp.method in session_methods
} else := {"allow": false, "reason": "approval was denied"} if {
	high_sensitivity
	input.approval.status == "denied"
	delegated_call
} else := {
	"allow": false,
	"reason": "approval required for a high-sensitivity resource",
	"approval": {
		"required": true,
		"binding_message": sprintf("Allow %s to call %s for %s?", [input.identity.agent, input.mcp.name, input.identity.user]),
		"ttl": "10m",
	},
} if {
	high_sensitivity
	not approved
	delegated_call
} else := {
	"allow": true,
	"reason": reason,
	"scopes": [sprintf("mcp:%s:%s", [call_kinds[input.mcp.method], urlquery.encode(input.mcp.name)])],
	"audience": audience,
	"ttl": "60s",
} if {
	delegated_call
}

session_methods := {
	"initialize",
	"notifications/initialized",
	"ping",
	"tools/list",
	"resources/list",
	"prompts/list",
}

call_kinds := {
	"tools/call": "tools",
	"resources/read": "resources",
	"prompts/get": "prompts",
}

delegated_call if {
	call_kinds[input.mcp.method]
	input.mcp.name != ""
	input.identity.user != ""
	input.identity.agent != ""
}

# The route names a tenant and the identity's tenant differs or is absent.
# (Written with "not ... ==" rather than object.get(input.identity, ...) so
# that the policy reads input.identity.tenant only, not the whole identity.)
tenant_mismatch if {
	input.resource.tenant
	not input.identity.tenant == input.resource.tenant
}

high_sensitivity if input.resource.sensitivity == "high"

approved if input.approval.status == "approved"

reason := "delegated MCP call allowed with approval" if {
	high_sensitivity
	approved
} else := "delegated MCP call allowed"

default audience := "mcp://tools"

audience := input.resource.id if input.resource.id != ""
