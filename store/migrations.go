package store

// migrations are applied in order, each exactly once; the index+1 is the
// schema version recorded in schema_version. Never edit a released entry:
// append a new one.
var migrations = []string{
	// 1: the evidence log (audit) and signing keys (tokens).
	`CREATE TABLE evidence (
		seq         INTEGER PRIMARY KEY,
		decision_id TEXT    NOT NULL UNIQUE,
		record      TEXT    NOT NULL, -- canonical JSON of the record, without hashes
		prev_hash   BLOB    NOT NULL, -- SHA-256, 32 bytes
		hash        BLOB    NOT NULL  -- SHA-256(hex(prev_hash) "\n" record), 32 bytes
	);
	CREATE TABLE signing_keys (
		kid          TEXT    PRIMARY KEY,
		alg          TEXT    NOT NULL,
		created_at   INTEGER NOT NULL, -- unix seconds
		retired_at   INTEGER,          -- unix seconds; NULL while current
		sealed       BLOB    NOT NULL  -- private key, AES-256-GCM sealed
	);`,
	// 2: approval requests (approvals) and the decisions that used them.
	// Times are unix milliseconds; durations are milliseconds.
	`CREATE TABLE approval_requests (
		seq              INTEGER PRIMARY KEY,
		id               TEXT    NOT NULL UNIQUE, -- auth_req_id
		fingerprint      TEXT    NOT NULL,        -- hex SHA-256 of the bound call
		user_id          TEXT    NOT NULL,
		agent            TEXT    NOT NULL,
		tenant           TEXT    NOT NULL,
		resource         TEXT    NOT NULL,
		action           TEXT    NOT NULL,
		arguments_sha256 TEXT    NOT NULL,
		opened_by        TEXT    NOT NULL,        -- decision id that opened it
		binding_message  TEXT    NOT NULL,
		approvers        TEXT    NOT NULL,        -- JSON array of strings
		status           TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
		approver         TEXT    NOT NULL DEFAULT '',
		created_at       INTEGER NOT NULL,
		decided_at       INTEGER,
		expires_at       INTEGER NOT NULL,
		ttl_ms           INTEGER NOT NULL,
		window_ms        INTEGER NOT NULL,
		uses             INTEGER NOT NULL,        -- -1: unlimited within the window
		uses_left        INTEGER NOT NULL,
		expiry_told      INTEGER NOT NULL DEFAULT 0 -- 1 once a caller was answered "expired"
	);
	CREATE INDEX approval_requests_by_fingerprint ON approval_requests (fingerprint, seq);
	CREATE UNIQUE INDEX approval_requests_one_pending ON approval_requests (fingerprint) WHERE status = 'pending';
	CREATE TABLE approval_uses (
		seq         INTEGER PRIMARY KEY,
		request_id  TEXT    NOT NULL REFERENCES approval_requests (id),
		decision_id TEXT    NOT NULL,
		used_at     INTEGER NOT NULL
	);
	CREATE INDEX approval_uses_by_request ON approval_uses (request_id, seq);`,
	// 3: the arguments of a call waiting for approval, shown to approvers.
	`ALTER TABLE approval_requests ADD COLUMN arguments TEXT NOT NULL DEFAULT '';`,
	// 4: the agent registry (agents). Times are unix milliseconds.
	// agents_version.version grows with every status change, so a replica
	// learns whether to reload statuses with one cheap read.
	`CREATE TABLE agents (
		client_id     TEXT    PRIMARY KEY,
		name          TEXT    NOT NULL,
		owner         TEXT    NOT NULL,
		tenant        TEXT    NOT NULL,
		status        TEXT    NOT NULL CHECK (status IN ('active', 'pending', 'suspended')),
		created_at    INTEGER NOT NULL,
		last_seen     INTEGER,                  -- NULL until the agent is first seen
		status_by     TEXT    NOT NULL DEFAULT '', -- who last changed the status
		status_reason TEXT    NOT NULL DEFAULT '',
		status_at     INTEGER,
		epoch         INTEGER NOT NULL DEFAULT 0 -- suspensions so far
	);
	CREATE INDEX agents_by_tenant ON agents (tenant, client_id);
	CREATE TABLE agents_version (version INTEGER NOT NULL);
	INSERT INTO agents_version (version) VALUES (0);`,

	// 5: OAuth clients of registered agents (RFC 7591/7592), revoked writ
	// tokens (RFC 7009) and spent client-assertion ids (RFC 7523), the
	// last two shared so that every replica refuses the same replay.
	`CREATE TABLE agent_clients (
		client_id               TEXT    PRIMARY KEY REFERENCES agents (client_id) ON DELETE CASCADE,
		metadata                TEXT    NOT NULL, -- the registered client metadata, JSON
		secret_hash             BLOB,             -- SHA-256 of client_secret; NULL when none
		secret_expires_at       INTEGER NOT NULL DEFAULT 0, -- unix seconds; 0 never
		registration_token_hash BLOB,             -- SHA-256 of the registration access token
		issued_at               INTEGER NOT NULL, -- unix seconds
		updated_at              INTEGER NOT NULL  -- unix seconds
	);
	CREATE TABLE revoked_tokens (
		jti        TEXT    PRIMARY KEY,
		client_id  TEXT    NOT NULL,
		expires_at INTEGER NOT NULL, -- unix seconds: the row may go after this
		revoked_at INTEGER NOT NULL  -- unix milliseconds
	);
	CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at);
	CREATE TABLE spent_assertions (
		id         TEXT    PRIMARY KEY, -- client_id NUL jti
		expires_at INTEGER NOT NULL     -- unix seconds: the row may go after this
	);`,
}
