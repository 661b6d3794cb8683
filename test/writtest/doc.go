// Package writtest starts the real writ binary for end-to-end, interop and
// load tests, and plays a trusted identity provider whose tokens it accepts.
//
//	bin := writtest.Build(t)                       // go build ./cmd/writ once per test binary
//	idp := writtest.NewIssuer(t)                    // an ES256 issuer with a JWKS file
//	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
//	tok := idp.Delegated("alice", "research-bot", "tenant-a")
//	resp, err := w.Check(ctx, writtest.ToolCall("search_issues", map[string]any{"q": "bug"}, tok))
//	w.Signal(t, syscall.SIGHUP)                     // reload the signing keys
//	m := w.WaitForLine(t, regexp.MustCompile(`current=(\S+)`), 30*time.Second)
package writtest
