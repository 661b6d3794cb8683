package tokens_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/writ-dev/writ/tokens"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"
	s := tokens.Secret(value)
	if s.Reveal() != value {
		t.Fatal("Reveal lost the value")
	}
	for _, verb := range []string{"%v", "%s", "%q", "%+v", "%#v", "%x", "%X", "%d", "%10s", "%T"} {
		for name, arg := range map[string]any{"value": s, "pointer": &s, "in struct": struct{ T tokens.Secret }{s}, "in slice": []tokens.Secret{s}} {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(out, value) || strings.Contains(out, "c2VjcmV0") {
				t.Errorf("fmt %s of %s leaks: %s", verb, name, out)
			}
		}
	}
	if got := fmt.Sprintf("%q", s); got != `"REDACTED"` {
		t.Errorf("%%q = %s", got)
	}
	if got := fmt.Sprint(s); got != "REDACTED" {
		t.Errorf("Sprint = %s", got)
	}
	j, err := json.Marshal(map[string]any{"token": s})
	if err != nil || string(j) != `{"token":"REDACTED"}` {
		t.Errorf("json = %s, %v", j, err)
	}
	y, err := yaml.Marshal(map[string]any{"token": s})
	if err != nil || strings.Contains(string(y), value) {
		t.Errorf("yaml = %s, %v", y, err)
	}
}

// TestNothingLeaksAToken formats a real minted token, its Minted record and
// verification errors about it through fmt, slog and JSON.
func TestNothingLeaksAToken(t *testing.T) {
	f := newMintFixture(t, "ES256")
	minted, err := f.minter.Mint(context.Background(), mintRequest())
	if err != nil {
		t.Fatal(err)
	}
	raw := minted.Token.Reveal()
	signature := raw[strings.LastIndexByte(raw, '.')+1:]

	// Verification errors about the token (and a tampered copy).
	idp := newTestIssuer(t)
	v := newVerifier(t, []tokens.IssuerConfig{idp.config(t)}, tokens.VerifierOptions{Now: f.clk.Now})
	_, errUnknown := v.Verify(context.Background(), raw)
	_, errTampered := v.Verify(context.Background(), raw[:len(raw)-4]+"AAAA")
	_, errHuge := v.Verify(context.Background(), raw+strings.Repeat(raw, 20))
	if errUnknown == nil || errTampered == nil || errHuge == nil {
		t.Fatal("foreign tokens verified")
	}
	wrapped := fmt.Errorf("check: %w", errors.Join(errUnknown, errTampered, errHuge))

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		logger := slog.New(h)
		logger.Info("minted", "token", minted.Token, "minted", minted, "err", wrapped)
		logger.Info("minted", slog.Any("token", minted.Token), slog.Any("minted", &minted), slog.Group("g", "t", minted.Token))
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&buf, verb+"\n", minted)
		fmt.Fprintf(&buf, verb+"\n", &minted)
		fmt.Fprintf(&buf, verb+"\n", minted.Token)
		fmt.Fprintf(&buf, verb+"\n", wrapped)
	}
	j, err := json.Marshal(minted)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)

	out := buf.String()
	if !strings.Contains(out, minted.JTI) || !strings.Contains(out, "REDACTED") {
		t.Fatalf("output lacks the expected non-secret fields:\n%s", out)
	}
	for _, leak := range []string{raw, signature, raw[:len(raw)-4]} {
		if strings.Contains(out, leak) {
			t.Fatalf("token material leaked into output:\n%s", out)
		}
	}
}
