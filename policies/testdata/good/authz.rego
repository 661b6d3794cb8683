package writ.authz

default decision := {"allow": false, "reason": "not listed"}

decision := {"allow": false, "reason": "tenant is suspended"} if {
	data.tenants[input.identity.tenant].suspended
} else := {"allow": true, "reason": "listed tool", "scopes": ["tools:call"], "audience": data.settings.audience} if {
	input.mcp.name in data.settings.allowed_tools
}
