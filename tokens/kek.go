package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyEncryptionKeyEnv names the environment variable that, when set, holds
// the key-encryption key as base64 (standard or URL alphabet, padded or not)
// of exactly 32 bytes.
const KeyEncryptionKeyEnv = "WRIT_KEY_ENCRYPTION_KEY"

// KeyEncryptionKeyFile is the key-encryption key's file name inside the data
// directory, used when KeyEncryptionKeyEnv is not set.
const KeyEncryptionKeyFile = "key-encryption.key"

const kekSize = 32

// KeyEncryptionKey returns the 32-byte AES-256 key that seals private signing
// keys at rest. It comes from the environment variable WRIT_KEY_ENCRYPTION_KEY
// when that is set; otherwise from <dataDir>/key-encryption.key, which is
// created from crypto/rand with mode 0600 on first use. A file that group or
// other may read, or that does not hold exactly 32 bytes, is refused.
// Errors wrap ErrKeyEncryptionKey and never contain key material.
func KeyEncryptionKey(dataDir string) ([]byte, error) {
	if v, ok := os.LookupEnv(KeyEncryptionKeyEnv); ok {
		return decodeKEK(v)
	}
	path := filepath.Join(dataDir, KeyEncryptionKeyFile)
	kek, err := readKEKFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kek, err
	}
	fresh := make([]byte, kekSize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("%w: generate: %v", ErrKeyEncryptionKey, err)
	}
	switch err := createPrivateFile(path, fresh); {
	case err == nil:
		return fresh, nil
	case errors.Is(err, fs.ErrExist):
		// Another process created it first: use theirs.
		return readKEKFile(path)
	default:
		return nil, fmt.Errorf("%w: create %s: %v", ErrKeyEncryptionKey, path, err)
	}
}

func readKEKFile(path string) ([]byte, error) {
	data, err := readPrivateFile(path, kekSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrKeyEncryptionKey, err)
	case len(data) != kekSize:
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrKeyEncryptionKey, path, len(data), kekSize)
	}
	return data, nil
}

func decodeKEK(v string) ([]byte, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("%w: %s is set but empty", ErrKeyEncryptionKey, KeyEncryptionKeyEnv)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(v)
		if err != nil {
			continue
		}
		if len(b) != kekSize {
			return nil, fmt.Errorf("%w: %s decodes to %d bytes, want %d", ErrKeyEncryptionKey, KeyEncryptionKeyEnv, len(b), kekSize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: %s is not valid base64", ErrKeyEncryptionKey, KeyEncryptionKeyEnv)
}
