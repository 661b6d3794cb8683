package store

import "errors"

// ErrSchemaTooNew is returned when the database was written by a newer writ
// whose schema this binary does not know.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this writ")
