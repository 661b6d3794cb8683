package local_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/local"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

func key(t *testing.T) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(local.GenerateKey())
	if err != nil || len(k) != local.KeySize {
		t.Fatalf("GenerateKey: %d bytes, %v", len(k), err)
	}
	return k
}

func open(t *testing.T, cfg local.Config) *local.Store {
	t.Helper()
	s, err := local.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close(t.Context()) })
	return s
}

func TestPutFetchListDelete(t *testing.T) {
	dir := t.TempDir()
	s := open(t, local.Config{DataDir: dir, Key: key(t)})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if _, err := s.Put(ctx, "github/ci", "ghp_first", local.Meta{Format: "Bearer {value}"}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Put(ctx, "github/ci", "ghp_second", local.Meta{Format: "Bearer {value}", ExpiresAt: exp})
	if err != nil || e.Version != 2 {
		t.Fatalf("second Put: %+v, %v", e, err)
	}
	if _, err := s.Put(ctx, "salesforce", "sf", local.Meta{Header: "X-Api-Key"}); err != nil {
		t.Fatal(err)
	}

	// Through the real gRPC shim, as the host sees it.
	b := plugintest.New(t, s)
	cred, err := b.Fetch(ctx, vaultplugins.Request{Ref: "github/ci"})
	if err != nil {
		t.Fatal(err)
	}
	if _, v, _ := cred.Render(); v.Reveal() != "Bearer ghp_second" || cred.Version != "2" || !cred.ExpiresAt.Equal(exp) {
		t.Fatalf("Fetch = %q version %s expires %v", v.Reveal(), cred.Version, cred.ExpiresAt)
	}

	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Ref != "github/ci" || list[1].Ref != "salesforce" || list[1].Header != "X-Api-Key" {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if err := s.Delete(ctx, "github/ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, vaultplugins.Request{Ref: "github/ci"}); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "github/ci"); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}

	fi, err := os.Stat(filepath.Join(dir, local.FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestExpired(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := open(t, local.Config{DataDir: t.TempDir(), Key: key(t), Now: func() time.Time { return now }})
	if _, err := s.Put(t.Context(), "old", "v", local.Meta{ExpiresAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(t.Context(), vaultplugins.Request{Ref: "old"}); !errors.Is(err, vaultplugins.ErrNotFound) {
		t.Fatalf("expired: %v, want ErrNotFound", err)
	}
}

func TestInvalidInput(t *testing.T) {
	s := open(t, local.Config{DataDir: t.TempDir(), Key: key(t)})
	for _, tc := range []struct {
		name, ref string
		value     vaultplugins.Secret
		meta      local.Meta
		want      error
	}{
		{"empty ref", "", "v", local.Meta{}, local.ErrInvalidRef},
		{"control in ref", "a\nb", "v", local.Meta{}, local.ErrInvalidRef},
		{"long ref", strings.Repeat("r", 300), "v", local.Meta{}, local.ErrInvalidRef},
		{"empty value", "r", "", local.Meta{}, local.ErrInvalidValue},
		{"huge value", "r", vaultplugins.Secret(strings.Repeat("v", local.MaxValueBytes+1)), local.Meta{}, local.ErrInvalidValue},
		{"bad format", "r", "v", local.Meta{Format: "{nope}"}, vaultplugins.ErrInvalidCredential},
		{"bad header", "r", "v", local.Meta{Header: "a b"}, vaultplugins.ErrInvalidCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Put(t.Context(), tc.ref, tc.value, tc.meta); !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	dir := t.TempDir()
	s, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: key(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "r", "value", local.Meta{}); err != nil {
		t.Fatal(err)
	}
	s.Close(t.Context())
	if _, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: key(t)}); !errors.Is(err, local.ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	if _, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: []byte("short")}); !errors.Is(err, local.ErrKey) {
		t.Fatalf("Open with a short key: %v, want ErrKey", err)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := key(t), key(t)
	s, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"a", "b", "c"} {
		if _, err := s.Put(t.Context(), ref, vaultplugins.Secret("value-"+ref), local.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(t.Context())

	// Mid-rotation: the new key is current, the old one still serves.
	s = open(t, local.Config{DataDir: dir, Key: newKey, OldKeys: [][]byte{oldKey}})
	if _, err := s.Put(t.Context(), "d", "value-d", local.Meta{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"a", "d"} {
		if c, err := s.Fetch(t.Context(), vaultplugins.Request{Ref: ref}); err != nil || c.Value.Reveal() != "value-"+ref {
			t.Fatalf("before Rotate, %s: %v", ref, err)
		}
	}
	n, err := s.Rotate(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("Rotate = %d, %v; want 3", n, err)
	}
	if n, err := s.Rotate(t.Context()); err != nil || n != 0 {
		t.Fatalf("second Rotate = %d, %v; want 0", n, err)
	}
	s.Close(t.Context())

	if _, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: oldKey}); !errors.Is(err, local.ErrWrongKey) {
		t.Fatalf("old key after rotation: %v, want ErrWrongKey", err)
	}
	s2 := open(t, local.Config{DataDir: dir, Key: newKey})
	for _, ref := range []string{"a", "b", "c", "d"} {
		if c, err := s2.Fetch(t.Context(), vaultplugins.Request{Ref: ref}); err != nil || c.Value.Reveal() != "value-"+ref {
			t.Fatalf("after Rotate, %s: %v", ref, err)
		}
	}
	list, _ := s2.List(t.Context())
	for _, e := range list {
		if e.KeyID != list[0].KeyID {
			t.Fatalf("mixed key IDs after rotation: %+v", list)
		}
	}
}

func TestDatabaseHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	const secret = "PLAINTEXT-MARKER-c0ffee-4242"
	k := key(t)
	var logs bytes.Buffer
	s, err := local.Open(t.Context(), local.Config{DataDir: dir, Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "ref", secret, local.Meta{}); err != nil {
		t.Fatal(err)
	}
	cred, err := s.Fetch(t.Context(), vaultplugins.Request{Ref: "ref"})
	if err != nil || cred.Value.Reveal() != secret {
		t.Fatalf("Fetch: %v", err)
	}
	list, _ := s.List(t.Context())
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cred", cred, "list", list)
	s.Close(t.Context())
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("secret in logs: %s", logs.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range [][]byte{[]byte(secret), k, []byte(base64.StdEncoding.EncodeToString(k))} {
			if bytes.Contains(raw, needle) {
				t.Fatalf("%s holds plaintext or key material", filepath.Base(f))
			}
		}
	}
}

func TestKeyLoading(t *testing.T) {
	dir := t.TempDir()
	enc := local.GenerateKey()
	good := filepath.Join(dir, "good.key")
	loose := filepath.Join(dir, "loose.key")
	os.WriteFile(good, []byte(enc+"\n"), 0o600)
	os.WriteFile(loose, []byte(enc), 0o644)
	os.Chmod(loose, 0o644)
	if k, err := local.KeyFromFile(good); err != nil || base64.StdEncoding.EncodeToString(k) != enc {
		t.Fatalf("KeyFromFile: %v", err)
	}
	if _, err := local.KeyFromFile(loose); !errors.Is(err, local.ErrKey) {
		t.Fatalf("world-readable key file: %v, want ErrKey", err)
	}
	t.Setenv("WRIT_TEST_KEY", enc)
	if k, err := local.KeyFromEnv("WRIT_TEST_KEY"); err != nil || base64.StdEncoding.EncodeToString(k) != enc {
		t.Fatalf("KeyFromEnv: %v", err)
	}
	t.Setenv("WRIT_TEST_KEY", "not-base64!")
	if _, err := local.KeyFromEnv("WRIT_TEST_KEY"); !errors.Is(err, local.ErrKey) || strings.Contains(err.Error(), "not-base64") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := local.KeyFromEnv("WRIT_TEST_KEY_UNSET"); !errors.Is(err, local.ErrKey) {
		t.Fatalf("unset: %v", err)
	}
}
