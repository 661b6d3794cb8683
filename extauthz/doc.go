// Package extauthz is writ's Envoy external-authorization server: the gRPC
// service envoy.service.auth.v3.Authorization and Envoy's HTTP service mode,
// both in front of one Check pipeline.
//
// Check reads as its phases, one helper each:
//
//	describe headers → the request: route context, credential, parsed path
//	authenticate     → the caller: user, agent, tenant from a verified JWT or SPIFFE ID
//	describe body    → the MCP call and parsed body, read only for a caller
//	                   whose credential verified or who sent none
//	decide           → the policy's decision document
//	issue            → a writ token scoped to exactly this call
//	record           → one evidence record, queued for the hash-chained log
//	respond          → Envoy's CheckResponse: headers to set and remove, or a denial
//
// Every fault on the way, a panic included, fails closed: a denial with a
// clear reason and an evidence record, never an allow.
//
//	srv, err := extauthz.New(extauthz.Deps{Verifier: v, Engine: e, Minter: m, Evidence: log}, extauthz.Config{})
//	resp, err := srv.Check(ctx, req) // or srv.RegisterGRPC(grpcServer) / srv.HTTPHandler()
package extauthz
