package writ.authz

default decision = {"allow": false}

decision = {"allow": true} {
	input.mcp.name == "ok"
}
