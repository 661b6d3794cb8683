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
// # Decision cache
//
// Decide evaluates a policy on only the part of the input the revision can
// read, so for a deterministic policy the decision is a function of the
// revision and that pruned input, and the engine keeps successful
// decisions in a bounded cache (Options.DecisionCacheSize entries,
// 100000 by default). The rules:
//
//   - A revision is cached only if no rule of any of its modules refers
//     to a builtin whose result can change for the same arguments: one
//     OPA marks nondeterministic (http.send, net.lookup_ip_addr,
//     opa.runtime, rand.intn, uuid.rfc4122, io.jwt.decode_verify,
//     io.jwt.encode_sign, io.jwt.encode_sign_raw, json.match_schema,
//     json.verify_schema), any time.* builtin, or
//     crypto.x509.parse_and_verify_certificates[_with_options], which
//     check validity against the clock. A call, or a `with` that
//     substitutes such a builtin, anywhere in the revision is enough,
//     whether or not the entrypoint reaches it. print statements are
//     removed when the policy is compiled and trace only writes to a
//     tracer, so neither affects a decision. The revision's data is fixed
//     when it loads and the engine registers no builtins of its own.
//   - The key is a SHA-256 digest of the revision (its id, and a number
//     unique to each time a revision is loaded) and of a canonical
//     encoding of the pruned input: every value tagged and
//     length-prefixed, object keys in sorted order, so it does not depend
//     on the order maps were filled and two inputs share it only when
//     they are the same JSON document. It is computed from the Go Input
//     directly, so a hit never converts the input for OPA. A hit is returned only when the
//     entry's revision, full digest and canonical input all equal the
//     request's, so even a digest collision cannot return a decision made
//     for another input; for a canonical input over 512 bytes the entry
//     keeps a SHA3-256 digest of it instead, and both digests must match.
//   - Only successful decisions are cached, never errors. Loading a
//     revision makes its entries unreachable by any other revision,
//     including an earlier load of the same files; old entries age out
//     as the cache evicts.
//   - A Decision from Decide can be shared with other callers and must
//     be treated as read-only.
//
// CacheStats counts hits and misses for a metric.
//
// Policies are Rego v1 (OPA 1.x syntax: `if` before rule bodies,
// `contains` for multi-value rules). Test runs a policy directory's Rego
// tests the way `opa test` does.
package policies
