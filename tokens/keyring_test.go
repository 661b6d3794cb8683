package tokens_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/writ-dev/writ/store"
	"github.com/writ-dev/writ/tokens"
)

// jwksKIDs parses a JWKS and returns its kids in order, checking that every
// key is public and marked for signatures.
func jwksKIDs(t *testing.T, raw []byte) []string {
	t.Helper()
	m := decodeJSON(t, raw)
	keys, _ := m["keys"].([]any)
	var kids []string
	for _, k := range keys {
		jwk := k.(map[string]any)
		if _, private := jwk["d"]; private {
			t.Fatalf("JWKS publishes private key material: %v", jwk)
		}
		if jwk["use"] != "sig" {
			t.Errorf("use = %v, want sig", jwk["use"])
		}
		if jwk["alg"] == nil {
			t.Errorf("key %v has no alg", jwk["kid"])
		}
		kids = append(kids, jwk["kid"].(string))
	}
	return kids
}

func countKeys(t *testing.T, db *store.DB) (total, current int) {
	t.Helper()
	err := db.QueryRow(`SELECT count(*), count(*) - count(retired_at) FROM signing_keys`).Scan(&total, &current)
	if err != nil {
		t.Fatal(err)
	}
	return total, current
}

func TestKeyringFirstOpenCreatesKeyAndReopenLoadsIt(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	k := openKeyring(t, db, tokens.KeyringOptions{})
	kid := k.CurrentKeyID()
	if kid == "" {
		t.Fatal("no current key id")
	}
	if total, current := countKeys(t, db); total != 1 || current != 1 {
		t.Fatalf("signing_keys has %d rows, %d current; want 1, 1", total, current)
	}
	if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, []string{kid}) {
		t.Fatalf("JWKS kids = %v, want [%s]", got, kid)
	}

	// A second process opening the same database loads the same key.
	db2 := openDB(t, dir)
	k2 := openKeyring(t, db2, tokens.KeyringOptions{})
	if k2.CurrentKeyID() != kid {
		t.Fatalf("reopened kid = %q, want %q", k2.CurrentKeyID(), kid)
	}
	if !bytes.Equal(k2.JWKS(), k.JWKS()) {
		t.Fatal("reopened JWKS differs")
	}
	if total, _ := countKeys(t, db); total != 1 {
		t.Fatalf("reopen added keys: %d rows", total)
	}
}

func TestKeyringWrongKEK(t *testing.T) {
	db := openDB(t, t.TempDir())
	openKeyring(t, db, tokens.KeyringOptions{})
	_, err := tokens.OpenKeyring(context.Background(), db, testKEK(99), tokens.KeyringOptions{})
	if !errors.Is(err, tokens.ErrKeyDecrypt) {
		t.Fatalf("err = %v, want ErrKeyDecrypt", err)
	}
}

func TestKeyringRejectsBadKEKLength(t *testing.T) {
	db := openDB(t, t.TempDir())
	_, err := tokens.OpenKeyring(context.Background(), db, make([]byte, 16), tokens.KeyringOptions{})
	if !errors.Is(err, tokens.ErrKeyEncryptionKey) {
		t.Fatalf("err = %v, want ErrKeyEncryptionKey", err)
	}
}

func TestKeyringSealedBlobHidesPrivateKey(t *testing.T) {
	db := openDB(t, t.TempDir())
	k := openKeyring(t, db, tokens.KeyringOptions{})
	var kid string
	var sealed []byte
	if err := db.QueryRow(`SELECT kid, sealed FROM signing_keys`).Scan(&kid, &sealed); err != nil {
		t.Fatal(err)
	}
	if kid != k.CurrentKeyID() {
		t.Fatalf("row kid %q != current %q", kid, k.CurrentKeyID())
	}
	// Open the blob as the schema documents it: AES-256-GCM, additional
	// data = kid; layout version || nonce || ciphertext.
	block, err := aes.NewCipher(testKEK(1))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	ns := gcm.NonceSize()
	der, err := gcm.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(kid))
	if err != nil {
		t.Fatalf("blob does not open with the KEK and kid as additional data: %v", err)
	}
	if _, err := gcm.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte("other-kid")); err == nil {
		t.Fatal("blob opens with a different kid as additional data")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("sealed plaintext is not PKCS#8: %v", err)
	}
	priv := parsed.(*ecdsa.PrivateKey)
	scalar, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, der) || bytes.Contains(sealed, scalar) {
		t.Fatal("sealed blob contains the private key in the clear")
	}
	for i := 0; i+8 <= len(scalar); i++ {
		if bytes.Contains(sealed, scalar[i:i+8]) {
			t.Fatalf("sealed blob contains 8 bytes of the private scalar at offset %d", i)
		}
	}
	// The key in the blob is the one the JWKS publishes.
	var set jwkset.JWKSMarshal
	if err := jsonUnmarshal(k.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	pubX := priv.PublicKey.X.FillBytes(make([]byte, 32))
	if !bytes.Equal(x, pubX) {
		t.Fatal("sealed key is not the published key")
	}
}

func TestKeyringRotateAndRetain(t *testing.T) {
	clk := newClock()
	db := openDB(t, t.TempDir())
	k := openKeyring(t, db, tokens.KeyringOptions{Retain: 10 * time.Minute, Now: clk.Now})
	old := k.CurrentKeyID()
	oldJWKS := k.JWKS()

	clk.Advance(time.Minute)
	kid, err := k.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if kid == old || k.CurrentKeyID() != kid {
		t.Fatalf("after rotate: current %q, returned %q, old %q", k.CurrentKeyID(), kid, old)
	}
	if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, []string{kid, old}) {
		t.Fatalf("JWKS kids = %v, want [%s %s]", got, kid, old)
	}
	if bytes.Equal(oldJWKS, k.JWKS()) {
		t.Fatal("JWKS not re-rendered after rotation")
	}
	if total, current := countKeys(t, db); total != 2 || current != 1 {
		t.Fatalf("rows %d current %d, want 2 and 1", total, current)
	}

	// Still inside Retain: the old key stays published.
	clk.Advance(10 * time.Minute)
	if err := k.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, []string{kid, old}) {
		t.Fatalf("within retain: JWKS kids = %v", got)
	}
	// Past Retain: only the new key.
	clk.Advance(2 * time.Second)
	if err := k.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, []string{kid}) {
		t.Fatalf("after retain: JWKS kids = %v, want [%s]", got, kid)
	}
}

func TestKeyringSharedDatabaseSeesRotationAfterReload(t *testing.T) {
	dir := t.TempDir()
	server := openKeyring(t, openDB(t, dir), tokens.KeyringOptions{})
	cli := openKeyring(t, openDB(t, dir), tokens.KeyringOptions{})
	old := server.CurrentKeyID()
	if cli.CurrentKeyID() != old {
		t.Fatalf("second keyring made its own key: %q vs %q", cli.CurrentKeyID(), old)
	}
	kid, err := cli.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if server.CurrentKeyID() != old {
		t.Fatal("server changed key before Reload")
	}
	before := server.JWKS()
	if err := server.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if server.CurrentKeyID() != kid {
		t.Fatalf("server current = %q after reload, want %q", server.CurrentKeyID(), kid)
	}
	if got := jwksKIDs(t, server.JWKS()); !slices.Equal(got, []string{kid, old}) {
		t.Fatalf("server JWKS kids = %v", got)
	}
	if !bytes.Equal(server.JWKS(), cli.JWKS()) {
		t.Fatal("server and CLI publish different key sets")
	}
	// A reload with no change keeps the rendered set.
	again := server.JWKS()
	if err := server.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if &server.JWKS()[0] != &again[0] || bytes.Equal(before, again) {
		t.Fatal("unchanged reload re-rendered the JWKS, or rotation did not")
	}
}

func TestKeyringConcurrentRotations(t *testing.T) {
	dir := t.TempDir()
	a := openKeyring(t, openDB(t, dir), tokens.KeyringOptions{})
	b := openKeyring(t, openDB(t, dir), tokens.KeyringOptions{})
	errs := make(chan error, 6)
	for range 3 {
		go func() { _, err := a.Rotate(context.Background()); errs <- err }()
		go func() { _, err := b.Rotate(context.Background()); errs <- err }()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	total, current := countKeys(t, openDB(t, dir))
	if total != 7 || current != 1 {
		t.Fatalf("rows %d current %d, want 7 and 1", total, current)
	}
}

func TestKeyringAlgorithms(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k := openKeyring(t, openDB(t, t.TempDir()), tokens.KeyringOptions{Algorithm: alg})
			m := decodeJSON(t, k.JWKS())
			key := m["keys"].([]any)[0].(map[string]any)
			if key["alg"] != alg {
				t.Fatalf("alg = %v, want %s", key["alg"], alg)
			}
		})
	}
	_, err := tokens.OpenKeyring(context.Background(), openDB(t, t.TempDir()), testKEK(1), tokens.KeyringOptions{Algorithm: "HS256"})
	if err == nil {
		t.Fatal("HS256 keyring accepted")
	}
}

func TestKeyEncryptionKey(t *testing.T) {
	raw := testKEK(7)
	for name, enc := range map[string]*base64.Encoding{
		"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
		"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
	} {
		t.Run("env "+name, func(t *testing.T) {
			t.Setenv(tokens.KeyEncryptionKeyEnv, enc.EncodeToString(raw))
			got, err := tokens.KeyEncryptionKey(t.TempDir())
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("got %x, %v", got, err)
			}
		})
	}
	for name, val := range map[string]string{
		"short":    base64.StdEncoding.EncodeToString(raw[:16]),
		"garbage":  "not base64 at all!",
		"empty":    "",
		"too long": base64.StdEncoding.EncodeToString(append(raw, 1)),
	} {
		t.Run("env "+name, func(t *testing.T) {
			t.Setenv(tokens.KeyEncryptionKeyEnv, val)
			_, err := tokens.KeyEncryptionKey(t.TempDir())
			if !errors.Is(err, tokens.ErrKeyEncryptionKey) {
				t.Fatalf("err = %v, want ErrKeyEncryptionKey", err)
			}
			if val != "" && bytes.Contains([]byte(err.Error()), []byte(val)) {
				t.Fatal("error message contains the key")
			}
		})
	}
}

func TestKeyEncryptionKeyFile(t *testing.T) {
	t.Setenv(tokens.KeyEncryptionKeyEnv, "") // restored after the test
	os.Unsetenv(tokens.KeyEncryptionKeyEnv)
	dir := filepath.Join(t.TempDir(), "data")
	first, err := tokens.KeyEncryptionKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, tokens.KeyEncryptionKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file mode %v size %d, want 0600 and 32", fi.Mode().Perm(), fi.Size())
	}
	second, err := tokens.KeyEncryptionKey(dir)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("second read: %x, %v; want the same key", second, err)
	}
	if bytes.Equal(first, make([]byte, 32)) {
		t.Fatal("key is all zeroes")
	}

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.KeyEncryptionKey(dir); !errors.Is(err, tokens.ErrKeyEncryptionKey) {
		t.Fatalf("group-readable file: err = %v", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.KeyEncryptionKey(dir); !errors.Is(err, tokens.ErrKeyEncryptionKey) {
		t.Fatalf("short file: err = %v", err)
	}
}
