package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/writ-dev/writ/test/writtest"
)

var (
	reloadedLine = regexp.MustCompile(`^writ signing keys reloaded: current=(\S+)$`)
	rotatedLine  = regexp.MustCompile(`new signing key (\S+) is current; (\S+) stays published`)
)

// reloadWait bounds how long writ may take to answer a SIGHUP.
const reloadWait = 30 * time.Second

// mintedKeyID checks a tool call and returns the minted token and the kid
// in its header.
func mintedKeyID(t *testing.T, w *writtest.Writ, inbound, tool string) (token, kid string) {
	t.Helper()
	resp, err := w.Check(t.Context(), writtest.ToolCall(tool, map[string]any{"q": "bug"}, inbound, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("%s: want allow, got %v", tool, resp)
	}
	token = strings.TrimPrefix(writtest.Header(resp, "authorization"), "Bearer ")
	// Only to read the header; verifyWithJWKS checks the signature.
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("%s: minted token: %v", tool, err)
	}
	kid, _ = tok.Header["kid"].(string)
	if kid == "" {
		t.Fatalf("%s: minted token has no kid: %v", tool, tok.Header)
	}
	return token, kid
}

// servedJWKS fetches the JWKS writ serves, raw and as its list of kids.
func servedJWKS(t *testing.T, w *writtest.Writ) (raw []byte, kids []string) {
	t.Helper()
	resp, err := http.Get("http://" + w.API + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: status %d, %v", resp.StatusCode, err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS: %v\n%s", err, raw)
	}
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatalf("JWKS publishes private key material for %s", k.KID)
		}
		kids = append(kids, k.KID)
	}
	return raw, kids
}

// TestKeyRotation: `writ keys rotate` beside a running writ, then SIGHUP:
// new tokens are signed with the new key, and the JWKS keeps the old key
// so tokens it signed still verify.
func TestKeyRotation(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})
	inbound := idp.Delegated(t, "alice", "research-bot", "tenant-a")

	before, kidA := mintedKeyID(t, w, inbound, "search_issues")
	if _, kids := servedJWKS(t, w); !slices.Equal(kids, []string{kidA}) {
		t.Fatalf("JWKS before rotation lists %v, want only the signing key %s", kids, kidA)
	}

	out, err := w.Run(t, "keys", "rotate", "--data-dir", w.DataDir)
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	m := rotatedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys rotate printed %q", out)
	}
	kidB := m[1]
	if m[2] != kidA || kidB == kidA {
		t.Fatalf("keys rotate: new %s, previous %s; want a new key replacing %s", kidB, m[2], kidA)
	}

	w.Signal(t, syscall.SIGHUP)
	if got := w.WaitForLine(t, reloadedLine, reloadWait)[1]; got != kidB {
		t.Fatalf("after SIGHUP writ reports current=%s, want %s", got, kidB)
	}

	after, kid := mintedKeyID(t, w, inbound, "list_repos") // another tool: the mint cache misses
	if kid != kidB {
		t.Fatalf("token minted after the reload has kid %s, want %s", kid, kidB)
	}
	_, kids := servedJWKS(t, w)
	if !slices.Equal(kids, []string{kidB, kidA}) {
		t.Fatalf("JWKS after rotation lists %v, want the new key %s first, then %s", kids, kidB, kidA)
	}
	// A resource server with only the JWKS accepts both tokens.
	for name, tok := range map[string]string{"before rotation": before, "after rotation": after} {
		claims := verifyWithJWKS(t, w.API, tok)
		if claims["sub"] != "alice" || claims["iss"] != w.Issuer {
			t.Errorf("token minted %s: claims %v", name, claims)
		}
	}
}

// TestKeyRotationWrongKeyEncryptionKey: `writ keys rotate` with a key-
// encryption key that did not seal the stored keys fails with a clear
// error and changes nothing.
func TestKeyRotationWrongKeyEncryptionKey(t *testing.T) {
	bin := writtest.Build(t)
	idp := writtest.NewIssuer(t)
	w := writtest.Start(t, bin, writtest.Options{Issuers: []*writtest.Issuer{idp}})

	w.Signal(t, syscall.SIGHUP)
	current := w.WaitForLine(t, reloadedLine, reloadWait)[1]
	jwksBefore, kids := servedJWKS(t, w)
	if !slices.Equal(kids, []string{current}) {
		t.Fatalf("JWKS lists %v, want only %s", kids, current)
	}

	otherKEK := make([]byte, 32)
	if _, err := rand.Read(otherKEK); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, kek, want string
	}{
		{"another key", base64.StdEncoding.EncodeToString(otherKEK), "writ: tokens: cannot decrypt signing key (wrong key-encryption key?): key \"" + current + "\""},
		{"too short", base64.StdEncoding.EncodeToString(otherKEK[:16]), "writ: tokens: invalid key-encryption key: WRIT_KEY_ENCRYPTION_KEY decodes to 16 bytes, want 32"},
		{"not base64", "not base64!", "writ: tokens: invalid key-encryption key: WRIT_KEY_ENCRYPTION_KEY is not valid base64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(w.Bin, "keys", "rotate", "--data-dir", w.DataDir)
			cmd.Env = append(os.Environ(), "WRIT_KEY_ENCRYPTION_KEY="+tc.kek)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
				t.Fatalf("keys rotate: exit %d (%v), want 1\nstdout: %s\nstderr: %s", code, err, stdout.String(), stderr.String())
			}
			if got := strings.TrimSpace(stderr.String()); got != tc.want {
				t.Errorf("stderr = %q\nwant     %q", got, tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if strings.Contains(stderr.String(), tc.kek) {
				t.Error("the error echoes the key-encryption key")
			}

			// Nothing changed: the reload finds the same current key and
			// the served JWKS is byte for byte the same.
			w.Signal(t, syscall.SIGHUP)
			if got := w.WaitForLine(t, reloadedLine, reloadWait)[1]; got != current {
				t.Fatalf("after the failed rotation writ reports current=%s, want %s", got, current)
			}
			if jwks, _ := servedJWKS(t, w); !bytes.Equal(jwks, jwksBefore) {
				t.Fatalf("JWKS changed after a failed rotation:\nbefore %s\nafter  %s", jwksBefore, jwks)
			}
		})
	}
	if err := w.Terminate(t); err != nil {
		t.Fatalf("writ exited with %v\n%s", err, w.Stderr())
	}
	if strings.Contains(w.Stderr(), `"signing keys not reloaded"`) {
		t.Errorf("writ failed to reload its keys:\n%s", w.Stderr())
	}
}
