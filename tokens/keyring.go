package tokens

import (
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/store"
)

// KeyringOptions configures a Keyring.
type KeyringOptions struct {
	// Algorithm of newly generated keys: ES256 (default), RS256 or EdDSA.
	// Changing it takes effect at the next Rotate; the current key keeps
	// its own algorithm.
	Algorithm string
	// Retain is how long a retired key stays in the JWKS. It must cover the
	// longest token lifetime (MinterOptions.MaxTTL) plus the interval at
	// which servers call Reload. Default 10m.
	Retain time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Keyring holds writ's signing keys: one current key that signs, and the
// retired keys whose tokens may still be live, all published in the JWKS.
// Private keys live in the signing_keys table sealed with AES-256-GCM under
// the key-encryption key. A Keyring is safe for concurrent use; the signing
// path reads the current key through an atomic pointer, without a lock.
type Keyring struct {
	db     *store.DB
	aead   cipher.AEAD
	alg    string
	retain time.Duration
	now    func() time.Time

	mu     sync.Mutex             // serialises Reload and Rotate
	opened map[string]*signingKey // decrypted keys by kid; guarded by mu

	state atomic.Pointer[keyState]
}

// signingKey is one decrypted key.
type signingKey struct {
	kid     string
	alg     string
	method  jwt.SigningMethod
	private crypto.Signer
	created time.Time
}

// keyState is an immutable snapshot of the published keys.
type keyState struct {
	current *signingKey
	kids    []string // published, current first
	jwks    []byte
}

// sealVersion prefixes every sealed blob so the format can change later.
const sealVersion = 1

// OpenKeyring loads the signing keys from db, opening each with kek (see
// KeyEncryptionKey), and generates and stores a first key when there is no
// current one. A kek that did not seal the stored keys gives ErrKeyDecrypt.
func OpenKeyring(ctx context.Context, db *store.DB, kek []byte, opts KeyringOptions) (*Keyring, error) {
	if db == nil {
		return nil, errors.New("tokens: OpenKeyring needs a database")
	}
	if len(kek) != kekSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeyEncryptionKey, len(kek), kekSize)
	}
	if opts.Algorithm == "" {
		opts.Algorithm = ES256
	}
	switch opts.Algorithm {
	case ES256, RS256, EdDSA:
	default:
		return nil, fmt.Errorf("tokens: signing algorithm %q is not supported (want ES256, RS256 or EdDSA)", opts.Algorithm)
	}
	if opts.Retain == 0 {
		opts.Retain = 10 * time.Minute
	}
	if opts.Retain < 0 {
		return nil, fmt.Errorf("tokens: keyring retain %v is negative", opts.Retain)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyEncryptionKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyEncryptionKey, err)
	}
	k := &Keyring{
		db:     db,
		aead:   aead,
		alg:    opts.Algorithm,
		retain: opts.Retain,
		now:    opts.Now,
		opened: make(map[string]*signingKey),
	}
	if err := k.ensureCurrent(ctx); err != nil {
		return nil, err
	}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// ensureCurrent inserts a first key when the table has no current key.
func (k *Keyring) ensureCurrent(ctx context.Context) error {
	has, err := hasCurrentKey(ctx, k.db)
	if err != nil || has {
		return err
	}
	row, err := k.newKey()
	if err != nil {
		return err
	}
	// The store begins transactions with BEGIN IMMEDIATE, so two processes
	// opening a fresh database at once serialise here.
	tx, err := k.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tokens: begin key insert: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&n); err != nil {
		return fmt.Errorf("tokens: read signing keys: %w", err)
	}
	if n > 0 {
		return nil // another process won the race
	}
	if err := row.insert(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tokens: commit first signing key: %w", err)
	}
	return nil
}

func hasCurrentKey(ctx context.Context, db *store.DB) (bool, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&n); err != nil {
		return false, fmt.Errorf("tokens: read signing keys: %w", err)
	}
	return n > 0, nil
}

// keyRow is a freshly generated key, sealed and ready to insert.
type keyRow struct {
	kid     string
	alg     string
	created int64
	sealed  []byte
}

func (r keyRow) insert(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, alg, created_at, retired_at, sealed) VALUES (?, ?, ?, NULL, ?)`,
		r.kid, r.alg, r.created, r.sealed)
	if err != nil {
		return fmt.Errorf("tokens: store signing key: %w", err)
	}
	return nil
}

// newKey generates a key of the configured algorithm and seals it.
func (k *Keyring) newKey() (keyRow, error) {
	priv, err := generateSigningKey(k.alg)
	if err != nil {
		return keyRow{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyRow{}, fmt.Errorf("tokens: encode signing key: %w", err)
	}
	defer clear(der)
	kid, err := keyID(priv.Public())
	if err != nil {
		return keyRow{}, err
	}
	sealed, err := k.seal(kid, der)
	if err != nil {
		return keyRow{}, err
	}
	return keyRow{kid: kid, alg: k.alg, created: k.now().Unix(), sealed: sealed}, nil
}

// keyID derives a kid from the public key: base64url of the first 16 bytes
// of SHA-256 over its SubjectPublicKeyInfo DER.
func keyID(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("tokens: encode public key: %w", err)
	}
	sum := sha256.Sum256(spki)
	return base64.RawURLEncoding.EncodeToString(sum[:16]), nil
}

// seal encrypts der with AES-256-GCM under a random nonce, binding it to kid
// as additional data: version byte || nonce || ciphertext+tag.
func (k *Keyring) seal(kid string, der []byte) ([]byte, error) {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(der)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("tokens: nonce: %w", err)
	}
	return k.aead.Seal(out, out[1:], der, []byte(kid)), nil
}

func (k *Keyring) open(kid string, sealed []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: key %q: unrecognised sealed format", ErrKeyDecrypt, kid)
	}
	der, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("%w: key %q", ErrKeyDecrypt, kid)
	}
	return der, nil
}

// Rotate generates a new current key and retires the previous one
// (retired_at = now). It is safe while other processes share the database:
// the change happens in one write transaction, and other Keyrings see it at
// their next Reload. It returns the new key's kid.
func (k *Keyring) Rotate(ctx context.Context) (string, error) {
	row, err := k.newKey()
	if err != nil {
		return "", err
	}
	tx, err := k.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("tokens: begin rotation: %w", err)
	}
	defer tx.Rollback()
	// Round up, so a key is never dropped before Retain has fully passed.
	retired := k.now().Add(time.Second - 1).Unix()
	if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL`, retired); err != nil {
		return "", fmt.Errorf("tokens: retire signing key: %w", err)
	}
	if err := row.insert(ctx, tx); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("tokens: commit rotation: %w", err)
	}
	if err := k.Reload(ctx); err != nil {
		return "", err
	}
	return row.kid, nil
}

// Reload re-reads the signing_keys table, picking up a rotation made by
// another process, and drops keys retired longer than Retain ago from the
// published set. On error the previous keys stay in use.
func (k *Keyring) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()

	rows, err := k.db.QueryContext(ctx, `SELECT kid, alg, created_at, retired_at, sealed FROM signing_keys`)
	if err != nil {
		return fmt.Errorf("tokens: read signing keys: %w", err)
	}
	defer rows.Close()
	now := k.now()
	type candidate struct {
		kid     string
		alg     string
		created int64
		retired sql.NullInt64
		sealed  []byte
	}
	var live []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.kid, &c.alg, &c.created, &c.retired, &c.sealed); err != nil {
			return fmt.Errorf("tokens: read signing keys: %w", err)
		}
		if c.retired.Valid && now.Sub(time.Unix(c.retired.Int64, 0)) > k.retain {
			continue
		}
		live = append(live, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("tokens: read signing keys: %w", err)
	}
	// Current keys (never retired) first, newest first; then retired keys,
	// most recently retired first.
	slices.SortFunc(live, func(a, b candidate) int {
		if a.retired.Valid != b.retired.Valid {
			if !a.retired.Valid {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.retired.Int64, a.retired.Int64); c != 0 {
			return c
		}
		if c := cmp.Compare(b.created, a.created); c != 0 {
			return c
		}
		return cmp.Compare(b.kid, a.kid)
	})
	if len(live) == 0 || live[0].retired.Valid {
		return ErrNoCurrentKey
	}

	opened := make(map[string]*signingKey, len(live))
	keys := make([]*signingKey, 0, len(live))
	for _, c := range live {
		sk := k.opened[c.kid]
		if sk == nil {
			if sk, err = k.openRow(c.kid, c.alg, c.created, c.sealed); err != nil {
				return err
			}
		}
		opened[c.kid] = sk
		keys = append(keys, sk)
	}
	kids := make([]string, len(keys))
	for i, sk := range keys {
		kids[i] = sk.kid
	}
	prev := k.state.Load()
	if prev != nil && prev.current == keys[0] && slices.Equal(prev.kids, kids) {
		k.opened = opened
		return nil // nothing changed: keep the rendered JWKS
	}
	jwks, err := renderJWKS(ctx, keys)
	if err != nil {
		return err
	}
	k.opened = opened
	k.state.Store(&keyState{current: keys[0], kids: kids, jwks: jwks})
	return nil
}

// openRow decrypts and parses one stored key.
func (k *Keyring) openRow(kid, alg string, created int64, sealed []byte) (*signingKey, error) {
	der, err := k.open(kid, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: %v", ErrKeyDecrypt, kid, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok || !keyFits(alg, priv.Public()) {
		return nil, fmt.Errorf("tokens: key %q does not fit its algorithm %q", kid, alg)
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return nil, fmt.Errorf("tokens: key %q has unknown algorithm %q", kid, alg)
	}
	return &signingKey{kid: kid, alg: alg, method: method, private: priv, created: time.Unix(created, 0)}, nil
}

// renderJWKS builds the public JWK Set, current key first.
func renderJWKS(ctx context.Context, keys []*signingKey) ([]byte, error) {
	set := jwkset.NewMemoryStorage()
	for _, sk := range keys {
		jwk, err := jwkset.NewJWKFromKey(sk.private.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(sk.alg), KID: sk.kid, USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, fmt.Errorf("tokens: JWK for key %q: %w", sk.kid, err)
		}
		if err := set.KeyWrite(ctx, jwk); err != nil {
			return nil, fmt.Errorf("tokens: JWK for key %q: %w", sk.kid, err)
		}
	}
	return set.JSONPublic(ctx)
}

// JWKS returns the JSON Web Key Set of the current and still-retained public
// keys. It is rendered once per change; callers must not modify it.
func (k *Keyring) JWKS() []byte { return k.state.Load().jwks }

// CurrentKeyID returns the kid of the key that signs new tokens.
func (k *Keyring) CurrentKeyID() string { return k.state.Load().current.kid }

// current returns the signing key; lock-free.
func (k *Keyring) current() *signingKey { return k.state.Load().current }
