// Package agents is writ's agent registry: every agent writ knows, with its
// owner, tenant, status (active, pending, suspended), and created and
// last-seen times, kept in writ's SQLite database.
//
// Registration is inventory, not authority: what an agent may do is still
// decided per request. The registry's one say on the Check path is the kill
// switch: a suspended (or pending) agent is refused before any policy is
// evaluated or token minted.
//
//	reg, err := agents.Open(ctx, db, agents.Options{Logger: logger})
//	if err != nil { ... }
//	go reg.Run(ctx) // refreshes statuses and writes last-seen times
//	err = reg.Register(ctx, agents.Agent{ClientID: "research-bot", Owner: "alice", Tenant: "acme", Status: agents.Active})
//	err = reg.Suspend(ctx, "research-bot", "user:bob", "leaking data")
//	status, known := reg.Status(ctx, "research-bot") // "suspended", true
//
// Status reads an in-memory snapshot and never touches the database. A
// status change made through a Store is in its own snapshot at once; other
// Stores on the same database (other replicas, or the writ agents command)
// see it at their next refresh: Run checks a version counter every
// Options.Refresh (default 1s) and reloads the statuses only when it moved.
// A suspension is therefore enforced on the very next Check by the replica
// that made it, and within one refresh interval by every other replica.
//
// Agents that registered themselves (RFC 7591, through oauth.Registrar)
// also have a Client: their metadata and the SHA-256 of the secrets writ
// issued them (RegisterClient, Client, UpdateClient). ClientMetadata.Validate
// applies the registration rules. Documents fetches Client ID Metadata
// Documents — an https URL used as a client_id — over a client that reaches
// only public addresses on port 443, checked when it dials, follows no
// redirects, caps the document's size and caches it as its Cache-Control
// says, never caching a failure.
//
// Touch records that an agent was seen without writing: seen agents are
// kept in memory and written in one statement every Options.TouchInterval
// (default 5s), and once more when Run ends.
package agents
