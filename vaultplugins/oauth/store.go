package oauth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/writ-dev/writ/vaultplugins"
)

// FileName is the database file's name inside the data directory.
const FileName = "oauth.db"

// KeySize is the size of the sealing key: AES-256.
const KeySize = 32

// MaxTokenBytes caps a stored refresh token.
const MaxTokenBytes = 8 << 10

// Version is the backend version Describe reports.
const Version = "1.0.0"

const (
	maxUserLen = 256
	maxNameLen = 64
)

const schema = `CREATE TABLE IF NOT EXISTS oauth_accounts (
	user_id      TEXT    NOT NULL,
	provider     TEXT    NOT NULL,
	key_id       TEXT    NOT NULL, -- which key sealed the refresh token
	nonce        BLOB    NOT NULL, -- AES-GCM nonce, 12 bytes
	sealed       BLOB    NOT NULL, -- AES-256-GCM(refresh token), AAD = user_id NUL provider
	scopes       TEXT    NOT NULL, -- space-separated scopes granted at connect; empty when unknown
	version      INTEGER NOT NULL, -- 1 at connect, +1 on every rotation
	connected_at INTEGER NOT NULL, -- unix seconds
	rotated_at   INTEGER NOT NULL, -- unix seconds
	revoked_at   INTEGER,          -- unix seconds; set when the provider answered invalid_grant
	PRIMARY KEY (user_id, provider)
)`

// Account describes a connected account, never its tokens.
type Account struct {
	User     string
	Provider string
	// Scopes were granted when the account was connected; a Fetch may ask
	// for any subset of them. Empty means unknown: the provider decides.
	Scopes []string
	// Version is 1 at Connect and grows with every refresh-token rotation.
	Version     int64
	ConnectedAt time.Time
	RotatedAt   time.Time
	// RevokedAt is when the provider refused the grant; zero while usable.
	RevokedAt time.Time
}

// Store is the oauth vault backend: per-user connected accounts whose
// refresh tokens are sealed in oauth.db and traded for access tokens at
// Fetch time. It implements vaultplugins.Backend and vaultplugins.Closer and
// is safe for concurrent use.
type Store struct {
	db        *sql.DB
	path      string
	keyID     string
	aead      cipher.AEAD
	providers map[string]Provider
	client    *http.Client
	timeout   time.Duration
	margin    time.Duration
	now       func() time.Time
	log       *slog.Logger

	flights singleflight.Group

	mu    sync.Mutex
	cache map[string]cached      // by cacheKey
	locks map[string]*sync.Mutex // by accountKey: one refresh at a time per account
}

var (
	_ vaultplugins.Backend = (*Store)(nil)
	_ vaultplugins.Closer  = (*Store)(nil)
)

// Open opens (creating when absent) the account store in cfg.DataDir. It
// fails with ErrWrongKey when a stored refresh token is sealed under another
// key.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		providers: map[string]Provider{},
		client:    cfg.HTTPClient,
		timeout:   cfg.RefreshTimeout,
		margin:    cfg.ExpiryMargin,
		now:       cfg.Now,
		log:       cfg.Logger,
		cache:     map[string]cached{},
		locks:     map[string]*sync.Mutex{},
		keyID:     keyID(cfg.Key),
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.timeout == 0 {
		s.timeout = 10 * time.Second
	}
	if s.margin == 0 {
		s.margin = time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, p := range cfg.Providers {
		s.providers[p.Name] = p
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("oauth vault: create data directory: %w", err)
	}
	s.path = filepath.Join(cfg.DataDir, FileName)
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("oauth vault: create %s: %w", s.path, err)
	}
	f.Close()
	if err := os.Chmod(s.path, 0o600); err != nil {
		return nil, fmt.Errorf("oauth vault: chmod %s: %w", s.path, err)
	}
	dsn := "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(FULL)&_txlock=immediate"
	if s.db, err = sql.Open("sqlite", dsn); err != nil {
		return nil, fmt.Errorf("oauth vault: open %s: %w", s.path, err)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("oauth vault: schema: %w", err)
	}
	var other string
	switch err := s.db.QueryRowContext(ctx, `SELECT key_id FROM oauth_accounts WHERE key_id != ? LIMIT 1`, s.keyID).Scan(&other); {
	case err == nil:
		s.db.Close()
		return nil, fmt.Errorf("%w: key ID %s", ErrWrongKey, other)
	case !errors.Is(err, sql.ErrNoRows):
		s.db.Close()
		return nil, fmt.Errorf("oauth vault: read key IDs: %w", err)
	}
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close(context.Context) error { return s.db.Close() }

// Describe implements vaultplugins.Backend.
func (s *Store) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "oauth", Version: Version, Summary: "per-user connected OAuth 2.0 accounts, refreshed at call time"}, nil
}

// Connect stores user's refresh token at provider, sealed, replacing any
// account connected before (and forgetting its cached access tokens).
// scopes are the scopes the user granted; Fetch refuses any other.
func (s *Store) Connect(ctx context.Context, user, provider string, refreshToken vaultplugins.Secret, scopes []string) (Account, error) {
	if err := checkUser(user); err != nil {
		return Account{}, err
	}
	if _, ok := s.providers[provider]; !ok {
		return Account{}, fmt.Errorf("%w: %q", ErrUnknownProvider, provider)
	}
	if len(refreshToken) == 0 || len(refreshToken) > MaxTokenBytes {
		return Account{}, fmt.Errorf("%w: want 1 to %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	scopes, err := canonicalScopes(scopes)
	if err != nil {
		return Account{}, err
	}
	lock := s.accountLock(user, provider)
	lock.Lock()
	defer lock.Unlock()
	nonce, sealed := s.seal(user, provider, refreshToken.Reveal())
	now := s.now().Unix()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO oauth_accounts
		(user_id, provider, key_id, nonce, sealed, scopes, version, connected_at, rotated_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, NULL)
		ON CONFLICT(user_id, provider) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
			sealed = excluded.sealed, scopes = excluded.scopes, version = 1,
			connected_at = excluded.connected_at, rotated_at = excluded.rotated_at, revoked_at = NULL`,
		user, provider, s.keyID, nonce, sealed, strings.Join(scopes, " "), now, now); err != nil {
		return Account{}, fmt.Errorf("oauth vault: connect %s for user %q: %w", provider, user, err)
	}
	s.forget(user, provider)
	s.log.InfoContext(ctx, "oauth account connected", "user", user, "provider", provider, "scopes", scopes)
	return Account{User: user, Provider: provider, Scopes: scopes, Version: 1,
		ConnectedAt: time.Unix(now, 0), RotatedAt: time.Unix(now, 0)}, nil
}

// Disconnect deletes user's account at provider and forgets its cached
// access tokens; an absent account is an ErrNotFound. It does not revoke
// the grant at the provider.
func (s *Store) Disconnect(ctx context.Context, user, provider string) error {
	lock := s.accountLock(user, provider)
	lock.Lock()
	defer lock.Unlock()
	res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_accounts WHERE user_id = ? AND provider = ?`, user, provider)
	if err != nil {
		return fmt.Errorf("oauth vault: disconnect %s for user %q: %w", provider, user, err)
	}
	s.forget(user, provider)
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: no %s account for user %q", vaultplugins.ErrNotFound, provider, user)
	}
	return nil
}

// Accounts lists user's connected accounts, or every account when user is
// empty, ordered by user then provider.
func (s *Store) Accounts(ctx context.Context, user string) ([]Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user_id, provider, scopes, version, connected_at, rotated_at, revoked_at
		FROM oauth_accounts WHERE ? = '' OR user_id = ? ORDER BY user_id, provider`, user, user)
	if err != nil {
		return nil, fmt.Errorf("oauth vault: list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var a Account
		var scopes string
		var connected, rotated int64
		var revoked sql.NullInt64
		if err := rows.Scan(&a.User, &a.Provider, &scopes, &a.Version, &connected, &rotated, &revoked); err != nil {
			return nil, fmt.Errorf("oauth vault: list accounts: %w", err)
		}
		a.Scopes = strings.Fields(scopes)
		a.ConnectedAt, a.RotatedAt = time.Unix(connected, 0), time.Unix(rotated, 0)
		if revoked.Valid {
			a.RevokedAt = time.Unix(revoked.Int64, 0)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("oauth vault: list accounts: %w", err)
	}
	return out, nil
}

// account is a stored row with its refresh token opened.
type account struct {
	refresh vaultplugins.Secret
	scopes  []string
	version int64
	revoked bool
}

func (s *Store) load(ctx context.Context, user, provider string) (account, error) {
	var a account
	var kid, scopes string
	var nonce, sealed []byte
	var revoked sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT key_id, nonce, sealed, scopes, version, revoked_at
		FROM oauth_accounts WHERE user_id = ? AND provider = ?`, user, provider).
		Scan(&kid, &nonce, &sealed, &scopes, &a.version, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return account{}, fmt.Errorf("%w: user %q has no connected %s account", vaultplugins.ErrNotFound, user, provider)
	case err != nil:
		return account{}, fmt.Errorf("%w: oauth vault: read %s account of user %q: %w", vaultplugins.ErrUnavailable, provider, user, err)
	}
	if kid != s.keyID {
		return account{}, fmt.Errorf("%w: %w: key ID %s", vaultplugins.ErrUnavailable, ErrWrongKey, kid)
	}
	plain, err := s.aead.Open(nil, nonce, sealed, aad(user, provider))
	if err != nil {
		return account{}, fmt.Errorf("%w: %w: %s account of user %q does not open", vaultplugins.ErrUnavailable, ErrWrongKey, provider, user)
	}
	a.refresh = vaultplugins.Secret(plain)
	a.scopes = strings.Fields(scopes)
	a.revoked = revoked.Valid
	return a, nil
}

// rotate replaces the refresh token of the account at version, atomically:
// it does nothing when the account changed since it was read.
func (s *Store) rotate(ctx context.Context, user, provider string, version int64, refresh vaultplugins.Secret) (int64, bool, error) {
	nonce, sealed := s.seal(user, provider, refresh.Reveal())
	res, err := s.db.ExecContext(ctx, `UPDATE oauth_accounts SET key_id = ?, nonce = ?, sealed = ?, version = version + 1, rotated_at = ?
		WHERE user_id = ? AND provider = ? AND version = ? AND revoked_at IS NULL`,
		s.keyID, nonce, sealed, s.now().Unix(), user, provider, version)
	if err != nil {
		return 0, false, fmt.Errorf("%w: oauth vault: store rotated refresh token: %w", vaultplugins.ErrUnavailable, err)
	}
	n, _ := res.RowsAffected()
	return version + 1, n == 1, nil
}

func (s *Store) markRevoked(ctx context.Context, user, provider string, version int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE oauth_accounts SET revoked_at = ? WHERE user_id = ? AND provider = ? AND version = ?`,
		s.now().Unix(), user, provider, version)
	return err
}

func (s *Store) seal(user, provider, plain string) (nonce, sealed []byte) {
	nonce = make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // never fails
	return nonce, s.aead.Seal(nil, nonce, []byte(plain), aad(user, provider))
}

// aad binds a sealed token to its account; names never hold NUL.
func aad(user, provider string) []byte { return []byte(user + "\x00" + provider) }

func keyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("writ oauth vault key id\x00"), key...))
	return hex.EncodeToString(sum[:8])
}

func (s *Store) accountLock(user, provider string) *sync.Mutex {
	k := accountKey(user, provider)
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[k]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[k] = l
	}
	return l
}

func accountKey(user, provider string) string { return user + "\x00" + provider }
