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
}
