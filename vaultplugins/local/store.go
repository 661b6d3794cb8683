package local

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/writ-dev/writ/vaultplugins"
)

// FileName is the database file's name inside the data directory.
const FileName = "vault.db"

// MaxValueBytes caps one stored value.
const MaxValueBytes = 16 << 10

// maxRefLen caps a reference's length.
const maxRefLen = 256

// Version is the backend version Describe reports.
const Version = "1.0.0"

const schema = `CREATE TABLE IF NOT EXISTS vault_secrets (
	ref        TEXT    PRIMARY KEY,
	key_id     TEXT    NOT NULL, -- which key sealed the value
	nonce      BLOB    NOT NULL, -- AES-GCM nonce, 12 bytes
	sealed     BLOB    NOT NULL, -- AES-256-GCM(value), AAD = ref
	header     TEXT    NOT NULL,
	format     TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	created_at INTEGER NOT NULL, -- unix seconds
	updated_at INTEGER NOT NULL, -- unix seconds
	expires_at INTEGER           -- unix seconds; NULL when the value does not expire
)`

// Config configures a Store.
type Config struct {
	// DataDir holds the database file vault.db (mode 0600); it is created
	// with mode 0700 when absent.
	DataDir string
	// Key is the current 32-byte key: new and re-sealed values use it.
	Key []byte
	// OldKeys are still accepted for reading until Rotate has re-sealed
	// every value under Key.
	OldKeys [][]byte
	// Now is the clock expiry is checked on. Default time.Now.
	Now func() time.Time
}

// Meta is what a value is stored with, besides the value itself.
type Meta struct {
	// Header and Format are as in vaultplugins.Credential.
	Header string
	Format string
	// ExpiresAt is when the value stops being served; zero means never.
	ExpiresAt time.Time
}

// Entry describes a stored value, never the value.
type Entry struct {
	Ref       string
	Header    string
	Format    string
	Version   int64
	KeyID     string
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

// Store is the local encrypted vault. It implements vaultplugins.Backend and
// vaultplugins.Closer, and is safe for concurrent use.
type Store struct {
	db      *sql.DB
	path    string
	current string                 // key ID of Key
	aeads   map[string]cipher.AEAD // by key ID
	now     func() time.Time
}

var (
	_ vaultplugins.Backend = (*Store)(nil)
	_ vaultplugins.Closer  = (*Store)(nil)
)

// Open opens (creating when absent) the vault in cfg.DataDir. It fails with
// ErrWrongKey when a stored value is sealed under a key cfg does not hold.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{aeads: map[string]cipher.AEAD{}, now: cfg.Now}
	for i, k := range append([][]byte{cfg.Key}, cfg.OldKeys...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", ErrKey, i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		id := keyID(k)
		if i == 0 {
			s.current = id
		}
		s.aeads[id] = aead
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("local vault: create data directory: %w", err)
	}
	s.path = filepath.Join(cfg.DataDir, FileName)
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local vault: create %s: %w", s.path, err)
	}
	f.Close()
	if err := os.Chmod(s.path, 0o600); err != nil {
		return nil, fmt.Errorf("local vault: chmod %s: %w", s.path, err)
	}
	dsn := "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("local vault: open %s: %w", s.path, err)
	}
	s.db = db
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("local vault: schema: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT key_id FROM vault_secrets`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("local vault: read key IDs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			db.Close()
			return nil, fmt.Errorf("local vault: read key IDs: %w", err)
		}
		if s.aeads[id] == nil {
			db.Close()
			return nil, fmt.Errorf("%w: key ID %s", ErrWrongKey, id)
		}
	}
	if err := rows.Err(); err != nil {
		db.Close()
		return nil, fmt.Errorf("local vault: read key IDs: %w", err)
	}
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close(context.Context) error { return s.db.Close() }

// Put stores value under ref, sealed with the current key, replacing any
// previous value and incrementing its version.
func (s *Store) Put(ctx context.Context, ref string, value vaultplugins.Secret, meta Meta) (Entry, error) {
	if err := checkRef(ref); err != nil {
		return Entry{}, err
	}
	if len(value) == 0 || len(value) > MaxValueBytes {
		return Entry{}, fmt.Errorf("%w: want 1 to %d bytes", ErrInvalidValue, MaxValueBytes)
	}
	if _, _, err := (vaultplugins.Credential{Value: value, Header: meta.Header, Format: meta.Format}).Render(); err != nil {
		return Entry{}, err
	}
	nonce, sealed := s.seal(ref, value.Reveal())
	now := s.now().Unix()
	var expires any
	if !meta.ExpiresAt.IsZero() {
		expires = meta.ExpiresAt.Unix()
	}
	var e Entry
	var created, updated int64
	var exp sql.NullInt64
	err := s.db.QueryRowContext(ctx, `INSERT INTO vault_secrets
		(ref, key_id, nonce, sealed, header, format, version, created_at, updated_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
		ON CONFLICT(ref) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
			sealed = excluded.sealed, header = excluded.header, format = excluded.format,
			version = vault_secrets.version + 1, updated_at = excluded.updated_at,
			expires_at = excluded.expires_at
		RETURNING ref, header, format, version, key_id, created_at, updated_at, expires_at`,
		ref, s.current, nonce, sealed, meta.Header, meta.Format, now, now, expires,
	).Scan(&e.Ref, &e.Header, &e.Format, &e.Version, &e.KeyID, &created, &updated, &exp)
	if err != nil {
		return Entry{}, fmt.Errorf("local vault: put %q: %w", ref, err)
	}
	fillTimes(&e, created, updated, exp)
	return e, nil
}

// List returns every entry, without values, ordered by reference.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ref, header, format, version, key_id, created_at, updated_at, expires_at
		FROM vault_secrets ORDER BY ref`)
	if err != nil {
		return nil, fmt.Errorf("local vault: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var created, updated int64
		var exp sql.NullInt64
		if err := rows.Scan(&e.Ref, &e.Header, &e.Format, &e.Version, &e.KeyID, &created, &updated, &exp); err != nil {
			return nil, fmt.Errorf("local vault: list: %w", err)
		}
		fillTimes(&e, created, updated, exp)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("local vault: list: %w", err)
	}
	return out, nil
}

// Delete removes ref; deleting an absent reference is an ErrNotFound.
func (s *Store) Delete(ctx context.Context, ref string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM vault_secrets WHERE ref = ?`, ref)
	if err != nil {
		return fmt.Errorf("local vault: delete %q: %w", ref, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", vaultplugins.ErrNotFound, ref)
	}
	return nil
}

// Rotate re-seals, in one transaction, every value not sealed under the
// current key, and returns how many it re-sealed. Until it returns, the old
// keys keep serving; afterwards the store opens with the current key alone.
func (s *Store) Rotate(ctx context.Context) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("local vault: rotate: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT ref, key_id, nonce, sealed FROM vault_secrets WHERE key_id != ?`, s.current)
	if err != nil {
		return 0, fmt.Errorf("local vault: rotate: %w", err)
	}
	type row struct {
		ref, keyID    string
		nonce, sealed []byte
	}
	var old []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ref, &r.keyID, &r.nonce, &r.sealed); err != nil {
			rows.Close()
			return 0, fmt.Errorf("local vault: rotate: %w", err)
		}
		old = append(old, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("local vault: rotate: %w", err)
	}
	for _, r := range old {
		plain, err := s.open(r.ref, r.keyID, r.nonce, r.sealed)
		if err != nil {
			return 0, err
		}
		nonce, sealed := s.seal(r.ref, plain)
		if _, err := tx.ExecContext(ctx, `UPDATE vault_secrets SET key_id = ?, nonce = ?, sealed = ? WHERE ref = ?`,
			s.current, nonce, sealed, r.ref); err != nil {
			return 0, fmt.Errorf("local vault: rotate %q: %w", r.ref, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("local vault: rotate: %w", err)
	}
	return len(old), nil
}

// Fetch implements vaultplugins.Backend: req.Ref names the value.
func (s *Store) Fetch(ctx context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	if err := checkRef(req.Ref); err != nil {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrInvalidRequest, err)
	}
	var keyID, header, format string
	var nonce, sealed []byte
	var version int64
	var exp sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT key_id, nonce, sealed, header, format, version, expires_at
		FROM vault_secrets WHERE ref = ?`, req.Ref).Scan(&keyID, &nonce, &sealed, &header, &format, &version, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return vaultplugins.Credential{}, fmt.Errorf("%w: %q", vaultplugins.ErrNotFound, req.Ref)
	case err != nil:
		return vaultplugins.Credential{}, fmt.Errorf("%w: local vault: read %q: %w", vaultplugins.ErrUnavailable, req.Ref, err)
	}
	cred := vaultplugins.Credential{Header: header, Format: format, Version: strconv.FormatInt(version, 10)}
	if exp.Valid {
		cred.ExpiresAt = time.Unix(exp.Int64, 0)
		if !cred.ExpiresAt.After(s.now()) {
			return vaultplugins.Credential{}, fmt.Errorf("%w: %q expired", vaultplugins.ErrNotFound, req.Ref)
		}
	}
	plain, err := s.open(req.Ref, keyID, nonce, sealed)
	if err != nil {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %w", vaultplugins.ErrUnavailable, err)
	}
	cred.Value = vaultplugins.Secret(plain)
	return cred, nil
}

// Describe implements vaultplugins.Backend.
func (s *Store) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "local", Version: Version, Summary: "embedded AES-256-GCM encrypted store"}, nil
}

func (s *Store) seal(ref, plain string) (nonce, sealed []byte) {
	aead := s.aeads[s.current]
	nonce = make([]byte, aead.NonceSize())
	rand.Read(nonce) // never fails
	return nonce, aead.Seal(nil, nonce, []byte(plain), []byte(ref))
}

func (s *Store) open(ref, keyID string, nonce, sealed []byte) (string, error) {
	aead := s.aeads[keyID]
	if aead == nil {
		return "", fmt.Errorf("%w: key ID %s for %q", ErrWrongKey, keyID, ref)
	}
	plain, err := aead.Open(nil, nonce, sealed, []byte(ref))
	if err != nil {
		return "", fmt.Errorf("%w: %q does not open under key ID %s", ErrWrongKey, ref, keyID)
	}
	return string(plain), nil
}

func checkRef(ref string) error {
	if ref == "" || len(ref) > maxRefLen || strings.ContainsFunc(ref, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: want 1 to %d printable bytes", ErrInvalidRef, maxRefLen)
	}
	return nil
}

func fillTimes(e *Entry, created, updated int64, exp sql.NullInt64) {
	e.CreatedAt, e.UpdatedAt = time.Unix(created, 0), time.Unix(updated, 0)
	if exp.Valid {
		e.ExpiresAt = time.Unix(exp.Int64, 0)
	}
}
