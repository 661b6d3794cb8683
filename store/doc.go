// Package store opens writ's embedded SQLite database (pure Go, no cgo) and
// applies the schema the domain packages share: the evidence log and the
// signing keys.
//
//	db, err := store.OpenSQLite(ctx, "./writ-data")
//	if err != nil { ... }
//	defer db.Close()
//	rows, err := db.QueryContext(ctx, "SELECT count(*) FROM evidence")
//
// Domain packages take a *store.DB and issue their own SQL against the schema
// defined in migrations.go.
package store
