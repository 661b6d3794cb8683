package writ.authz_test

import data.writ.authz

resource := {"id": "http://127.0.0.1:1/mcp", "tenant": "acme"}

agent := {"agent": "c-1", "tenant": "acme", "scopes": ["tools.call"], "claims": {}, "dev": false}

test_agent_tool_call_allowed if {
	d := authz.decision with input as {"identity": agent, "resource": resource, "mcp": {"method": "tools/call", "name": "echo"}}
	d.allow == true
	d.scopes == ["mcp:tools:echo"]
	d.audience == resource.id
}

test_delegated_tool_call_allowed if {
	id := object.union(agent, {"user": "alice", "actors": ["c-1"]})
	d := authz.decision with input as {"identity": id, "resource": resource, "mcp": {"method": "tools/call", "name": "echo"}}
	d.allow == true
}

test_without_scope_denied if {
	id := object.union(agent, {"scopes": ["tools.read"]})
	d := authz.decision with input as {"identity": id, "resource": resource, "mcp": {"method": "tools/call", "name": "echo"}}
	d == {"allow": false, "reason": "no rule allowed this request"}
}

test_other_tenant_denied if {
	id := object.union(agent, {"tenant": "globex"})
	d := authz.decision with input as {"identity": id, "resource": resource, "mcp": {"method": "initialize"}}
	d == {"allow": false, "reason": "tenant mismatch"}
}

test_no_identity_denied if {
	d := authz.decision with input as {"resource": resource, "mcp": {"method": "tools/call", "name": "echo"}}
	d == {"allow": false, "reason": "no verified identity"}
}

test_session_method_allowed if {
	d := authz.decision with input as {"identity": agent, "resource": resource, "mcp": {"method": "initialize"}}
	d.scopes == ["mcp:session"]
}
