package writ.authz_test

import data.writ.authz

delegated := {"user": "alice", "agent": "research-bot", "tenant": "acme", "actors": ["research-bot"], "scopes": [], "claims": {}, "dev": false}

call(method, name) := {"method": method, "name": name, "arguments": {}}

test_no_identity_denied if {
	d := authz.decision with input as {"mcp": call("tools/call", "search_issues")}
	d == {"allow": false, "reason": "no verified identity"}
}

test_delegated_tool_call_allowed if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "search_issues"),
		"resource": {"id": "https://tickets.internal"},
	}
	d == {
		"allow": true,
		"reason": "delegated MCP call allowed",
		"scopes": ["mcp:tools:search_issues"],
		"audience": "https://tickets.internal",
		"ttl": "60s",
	}
}

test_delegated_call_default_audience if {
	d := authz.decision with input as {"identity": delegated, "mcp": call("tools/call", "search_issues")}
	d.allow == true
	d.audience == "mcp://tools"
}

test_resource_read_and_prompt_get_scopes if {
	r := authz.decision with input as {"identity": delegated, "mcp": call("resources/read", "file:///notes.md")}
	r.scopes == ["mcp:resources:file%3A%2F%2F%2Fnotes.md"]
	p := authz.decision with input as {"identity": delegated, "mcp": call("prompts/get", "summarise")}
	p.scopes == ["mcp:prompts:summarise"]
}

test_agent_without_user_denied if {
	d := authz.decision with input as {
		"identity": {"agent": "research-bot", "actors": [], "scopes": [], "claims": {}, "dev": false},
		"mcp": call("tools/call", "search_issues"),
	}
	d == {"allow": false, "reason": "no rule allowed this request"}
}

test_high_sensitivity_needs_approval if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "refund"),
		"resource": {"id": "https://billing.internal", "sensitivity": "high"},
	}
	d == {
		"allow": false,
		"reason": "approval required for a high-sensitivity resource",
		"approval": {"required": true, "binding_message": "Allow research-bot to call refund for alice?", "ttl": "10m"},
	}
}

test_high_sensitivity_pending_approval_still_required if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "refund"),
		"resource": {"sensitivity": "high"},
		"approval": {"id": "ap-1", "status": "pending"},
	}
	d.allow == false
	d.approval.required == true
}

test_high_sensitivity_approved_allowed if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "refund"),
		"resource": {"id": "https://billing.internal", "sensitivity": "high"},
		"approval": {"id": "ap-1", "status": "approved"},
	}
	d.allow == true
	d.reason == "delegated MCP call allowed with approval"
	d.scopes == ["mcp:tools:refund"]
}

test_high_sensitivity_approval_denied if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "refund"),
		"resource": {"sensitivity": "high"},
		"approval": {"id": "ap-1", "status": "denied"},
	}
	d == {"allow": false, "reason": "approval was denied"}
}

test_session_methods_allowed if {
	every method in ["initialize", "notifications/initialized", "ping", "tools/list", "resources/list", "prompts/list"] {
		d := authz.decision with input as {
			"identity": {"agent": "research-bot", "actors": [], "scopes": [], "claims": {}, "dev": false},
			"mcp": {"method": method, "arguments": {}},
		}
		d.allow == true
		d.scopes == ["mcp:session"]
	}
}

test_denied_tool if {
	d := authz.decision with input as {"identity": delegated, "mcp": call("tools/call", "delete_repo")}
		with data.writ.denied_tools as ["delete_repo"]
	d == {"allow": false, "reason": "tool is denied by policy"}
}

test_denied_tools_leave_other_tools_alone if {
	d := authz.decision with input as {"identity": delegated, "mcp": call("tools/call", "search_issues")}
		with data.writ.denied_tools as ["delete_repo"]
	d.allow == true
}

test_not_mcp_denied if {
	d := authz.decision with input as {"identity": delegated, "attributes": {}, "parsed_path": ["api"]}
	d == {"allow": false, "reason": "no rule allowed this request"}
}

test_unknown_mcp_method_denied if {
	d := authz.decision with input as {"identity": delegated, "mcp": call("sampling/createMessage", "")}
	d == {"allow": false, "reason": "no rule allowed this request"}
}

test_tenant_mismatch_denied if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "search_issues"),
		"resource": {"id": "mcp://tools-b", "tenant": "globex"},
	}
	d == {"allow": false, "reason": "tenant mismatch"}
}

test_tenant_mismatch_denies_session_methods_too if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": {"method": "tools/list", "arguments": {}},
		"resource": {"tenant": "globex"},
	}
	d == {"allow": false, "reason": "tenant mismatch"}
}

test_identity_without_tenant_denied_on_a_tenant_route if {
	d := authz.decision with input as {
		"identity": {"user": "alice", "agent": "research-bot", "actors": [], "scopes": [], "claims": {}, "dev": false},
		"mcp": call("tools/call", "search_issues"),
		"resource": {"tenant": "acme"},
	}
	d == {"allow": false, "reason": "tenant mismatch"}
}

test_same_tenant_allowed if {
	d := authz.decision with input as {
		"identity": delegated,
		"mcp": call("tools/call", "search_issues"),
		"resource": {"id": "mcp://tools", "tenant": "acme"},
	}
	d.allow == true
	d.scopes == ["mcp:tools:search_issues"]
}

test_route_without_tenant_allows_any_tenant if {
	d := authz.decision with input as {"identity": delegated, "mcp": call("tools/call", "search_issues"), "resource": {"id": "mcp://tools"}}
	d.allow == true
}

test_no_identity_wins_over_tenant_mismatch if {
	d := authz.decision with input as {"mcp": call("tools/call", "search_issues"), "resource": {"tenant": "acme"}}
	d == {"allow": false, "reason": "no verified identity"}
}

# Every byte outside letters, digits and "-_.~" is escaped, so a scope is one
# RFC 6749 scope-token whatever the name.
test_scope_names_are_escaped if {
	every name, want in {
		"search_issues": "mcp:tools:search_issues",
		"a-b.c~d": "mcp:tools:a-b.c~d",
		"x mcp:tools:delete_repo": "mcp:tools:x+mcp%3Atools%3Adelete_repo",
		"a/b:c": "mcp:tools:a%2Fb%3Ac",
		"a\"b\\c": "mcp:tools:a%22b%5Cc",
		"caf\u00e9": "mcp:tools:caf%C3%A9",
		"x\u3000y": "mcp:tools:x%E3%80%80y",
		"q?x=1#f": "mcp:tools:q%3Fx%3D1%23f",
	} {
		d := authz.decision with input as {"identity": delegated, "mcp": call("tools/call", name)}
		d.scopes == [want]
	}
}
