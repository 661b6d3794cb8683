package writ.authz_test

import data.writ.authz

test_ok_allowed if {
	d := authz.decision with input as {"mcp": {"name": "ok"}}
	d.allow
}

test_other_denied if {
	d := authz.decision with input as {"mcp": {"name": "other"}}
	not d.allow
}

# Fails on purpose: the policy denies this tool.
test_wrong_expectation if {
	d := authz.decision with input as {"mcp": {"name": "other"}}
	d.allow
}
