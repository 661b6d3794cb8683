// Package audit is writ's evidence log: one Record per decision, appended to
// a hash-chained log in the store's evidence table.
//
// Append only queues the record, so the Check path never waits on the disk;
// Run writes queued records in batches (one transaction per batch) and Close
// writes whatever is still queued before returning. A record is never dropped:
// when writes fail, the queued records are kept in order and retried, and
// Append refuses new records (ErrUnavailable) so that writ denies rather than
// answers without evidence.
//
//	log, err := audit.Open(ctx, db, audit.Options{Logger: logger})
//	if err != nil { ... }
//	go log.Run(ctx)
//	if err := log.Append(audit.Record{DecisionID: id, Outcome: "allow"}); err != nil {
//		// deny: the decision cannot be recorded
//	}
//	...
//	err = log.Close(shutdownCtx) // every accepted record is durable when this returns nil
//
// Each row's record column is the Record's JSON exactly as encoding/json
// renders it (fields in declaration order) and exactly as hashed. Its hash is
// SHA-256(hex(prev_hash) + "\n" + record), where prev_hash is the previous
// row's hash and the first record's prev_hash is 32 zero bytes (64 zeros in
// hex); both are stored as 32 raw bytes and shown as hex by Find. Verify
// walks the chain and names the first broken link; Find and Tail read records
// back.
//
// The chain proves that no record was altered, inserted or removed before the
// last one; removing records from the end leaves a shorter valid chain, so the
// latest hash (or Written count) should be kept elsewhere when that matters.
package audit
