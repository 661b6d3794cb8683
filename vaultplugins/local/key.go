package local

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of a vault key: AES-256.
const KeySize = 32

// GenerateKey returns a new random key, base64-encoded as KeyFromFile and
// KeyFromEnv expect it.
func GenerateKey() string {
	key := make([]byte, KeySize)
	rand.Read(key) // never fails; crashes the program on a broken source
	return base64.StdEncoding.EncodeToString(key)
}

// KeyFromFile reads a base64-encoded 32-byte key from path. The file must not
// be readable by group or others.
func KeyFromFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrKey, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %v, want 0600 or stricter", ErrKey, path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrKey, err)
	}
	return decodeKey(string(raw))
}

// KeyFromEnv reads a base64-encoded 32-byte key from the environment
// variable name.
func KeyFromEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrKey, name)
	}
	return decodeKey(v)
}

func decodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("%w: want base64 of %d bytes", ErrKey, KeySize)
	}
	return key, nil
}

// keyID names a key without revealing it.
func keyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("writ local vault key id\x00"), key...))
	return hex.EncodeToString(sum[:8])
}
