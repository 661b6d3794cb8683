// Package policies is writ's policy engine: OPA Rego, compiled and prepared
// once per policy revision, swapped atomically when the policy changes.
//
// A policy answers at data.writ.authz.decision with writ's decision document
// (allow, reason, scopes, audience, ttl, approval, credential, headers, ...).
// A policy written for opa-envoy-plugin that only defines
// data.envoy.authz.allow (a boolean or an object) works unchanged: its
// input keeps opa-envoy-plugin's shape (attributes, parsed_path,
// parsed_query, parsed_body, truncated_body) and its result is translated
// into a Decision. writ adds verified facts beside it: input.identity,
// input.mcp, input.resource and input.approval.
//
// Until a policy is loaded the engine serves the embedded default policy
// (see default/authz.rego).
//
//	engine := policies.NewEngine(policies.Options{Logger: logger})
//	if _, err := engine.LoadDir(ctx, "./policies"); err != nil {
//		return err // names file:line; the previous revision keeps serving
//	}
//	go engine.Watch(ctx, "./policies") // hot reload on change
//
//	decision, revision, err := engine.Decide(ctx, &policies.Input{
//		Identity: &policies.Identity{User: "alice", Agent: "research-bot"},
//		MCP:      &policies.MCP{Method: "tools/call", Name: "search_issues"},
//	})
//
// Policies are Rego v1 (OPA 1.x syntax: `if` before rule bodies,
// `contains` for multi-value rules). Test runs a policy directory's Rego
// tests the way `opa test` does.
package policies
