// Package tokens holds writ's signing keys, mints writ tokens for allowed
// decisions, and verifies the inbound tokens agents present.
//
// Signing keys live in the signing_keys table, each private key sealed with
// AES-256-GCM under a key-encryption key (KeyEncryptionKey). A Keyring signs
// with its current key, publishes the current and recently retired public
// keys as a JWKS, and rotates without downtime: Rotate retires the current
// key, which stays in the JWKS for Retain so tokens it signed still verify.
// Servers call Reload periodically to pick up a rotation made by another
// process.
//
//	kek, err := tokens.KeyEncryptionKey(dataDir)
//	keys, err := tokens.OpenKeyring(ctx, db, kek, tokens.KeyringOptions{})
//	minter, err := tokens.NewMinter(keys, tokens.MinterOptions{Issuer: "https://writ.example"})
//	defer minter.Close()
//	minted, err := minter.Mint(ctx, tokens.MintRequest{
//		User: "alice", Agent: "research-bot", Actors: []string{"research-bot"},
//		Audience: "https://tickets.internal", Scopes: []string{"tickets:write"},
//		DecisionID: decisionID,
//	})
//	req.Header.Set("Authorization", "Bearer "+minted.Token.Reveal())
//
//	verifier, err := tokens.NewVerifier(ctx, cfg.TrustedIssuers, tokens.VerifierOptions{Logger: logger})
//	defer verifier.Close()
//	id, err := verifier.Verify(ctx, bearer) // id.User, id.Agent, id.Tenant, id.Actors
//	if errors.Is(err, tokens.ErrExpired) { ... }
//
// # Minted tokens
//
// The AccessToken profile follows RFC 9068: header typ "at+jwt"; claims iss,
// sub (the user, or the agent when there is no user), aud, exp, iat, nbf,
// jti (128 random bits), client_id (the agent), scope, act (RFC 8693, the
// actor chain nested nearest first), tenant, decision_id, approval_id and
// dev (only when true).
//
// The TxnToken profile follows draft-ietf-oauth-transaction-tokens: header
// typ "txntoken+jwt"; claims iss, iat, exp, aud, txn, sub, scope, tctx and
// req_wl. It deviates from the draft in these ways:
//   - aud is the resource the decision allowed, not a whole trust domain;
//   - jti repeats txn, so evidence joins both profiles on one field;
//   - tctx carries writ's authorization context: tenant, decision_id,
//     approval_id, actors (nearest first) and dev;
//   - req_wl is the agent, as a top-level claim, rather than inside a
//     requester-context object;
//   - writ mints the token directly for the call it decided; there is no
//     token-exchange request to a separate Txn-Token service.
//
// Minted tokens are cached: an identical request (profile, user, agent,
// actors, tenant, audience, sorted scopes, approval id, dev flag, TTL and
// current key) receives the same token while less than two thirds of its
// lifetime has passed, with Minted.Reused set. A reused token carries the
// decision_id of the decision that first minted it; evidence for the later
// decision should record both ids. A rotation changes the current key and so
// starts fresh tokens.
//
// # Verifying inbound tokens
//
// A Verifier trusts a fixed list of issuers (IssuerConfig). The unverified
// iss only selects the issuer; that issuer's algorithm allowlist, keys,
// audiences and iss then decide. alg "none" and every HMAC algorithm are
// refused before any key is touched, and a key is only used for an
// algorithm of its own type. Delegation follows RFC 8693: the user is sub,
// the agent act.sub, and nested act claims form the actor chain. A token
// without act names its agent in client_id (or azp); when its sub equals
// that client id, the agent acts as itself and there is no user.
//
// Verified identities are cached by SHA-256 of the token until exp, never
// longer; failures are not cached. An identity served from the cache is
// not re-checked against the issuer's current keys.
//
// The development issuer (OpenDevIssuer) signs delegated test tokens with
// a local ES256 key. Trust it only in development mode: its identities are
// marked Dev, and so are the tokens minted for them.
package tokens
