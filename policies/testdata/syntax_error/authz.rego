package writ.authz

default decision := {"allow": false}

decision := {"allow": true} if {
	input.mcp.name == "ok"
