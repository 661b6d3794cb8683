package vaultplugins_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

const plain = "sk-live-0123456789"

func TestSecretNeverPrints(t *testing.T) {
	cred := vaultplugins.Credential{
		Value:  plain,
		Values: map[string]vaultplugins.Secret{"password": plain},
		Format: "Bearer {value}",
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&out, verb+"\n", cred)
		fmt.Fprintf(&out, verb+"\n", cred.Value)
	}
	fmt.Fprintln(&out, cred, cred.Value)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "cred", cred, "value", cred.Value)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "cred", cred, "value", cred.Value)
	js, err := json.Marshal(cred)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	if strings.Contains(out.String(), plain) || !strings.Contains(out.String(), "REDACTED") {
		t.Fatalf("secret printed:\n%s", out.String())
	}
	if _, v, _ := cred.Render(); v.Reveal() != "Bearer "+plain {
		t.Fatalf("Reveal lost the value: %q", v.Reveal())
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cred         vaultplugins.Credential
		header, want string
		err          error
	}{
		{"defaults", vaultplugins.Credential{Value: "v"}, "Authorization", "v", nil},
		{"bearer", vaultplugins.Credential{Value: "v", Format: "Bearer {value}"}, "Authorization", "Bearer v", nil},
		{"named parts", vaultplugins.Credential{Values: map[string]vaultplugins.Secret{"user": "u", "pass": "p"}, Header: "X-Auth", Format: "{user}:{pass}"}, "X-Auth", "u:p", nil},
		{"unknown part", vaultplugins.Credential{Value: "v", Format: "{nope}"}, "", "", vaultplugins.ErrInvalidCredential},
		{"unterminated", vaultplugins.Credential{Value: "v", Format: "{value"}, "", "", vaultplugins.ErrInvalidCredential},
		{"bad header", vaultplugins.Credential{Value: "v", Header: "X Bad"}, "", "", vaultplugins.ErrInvalidCredential},
		{"header injection", vaultplugins.Credential{Value: "v\r\nX-Evil: 1"}, "", "", vaultplugins.ErrInvalidCredential},
		{"empty", vaultplugins.Credential{}, "", "", vaultplugins.ErrInvalidCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, v, err := tc.cred.Render()
			if !errors.Is(err, tc.err) || h != tc.header || v.Reveal() != tc.want {
				t.Fatalf("Render = %q, %q, %v; want %q, %q, %v", h, v.Reveal(), err, tc.header, tc.want, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "v\r\n") {
				t.Fatalf("error carries the value: %v", err)
			}
		})
	}
}

// leaky is a backend whose credentials and errors go through the shim.
type leaky struct{}

func (leaky) Fetch(_ context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	if req.Ref == "fail" {
		return vaultplugins.Credential{}, fmt.Errorf("%w: for %v", vaultplugins.ErrDenied, vaultplugins.Secret(plain))
	}
	if req.Ref == "large" {
		return vaultplugins.Credential{Value: vaultplugins.Secret(strings.Repeat("x", 2000))}, nil
	}
	return vaultplugins.Credential{Value: plain, Version: "7"}, nil
}

func (leaky) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "leaky", Version: "1"}, nil
}

func TestPlugintestThroughShim(t *testing.T) {
	b := plugintest.NewWithOptions(t, leaky{}, plugintest.Options{MaxResponseBytes: 1000})
	cred, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "ok", Scopes: []string{"repo"}})
	if err != nil || cred.Value.Reveal() != plain || cred.Version != "7" {
		t.Fatalf("Fetch = %v (%q), %v", cred, cred.Value.Reveal(), err)
	}
	_, err = b.Fetch(t.Context(), vaultplugins.Request{Ref: "fail"})
	if !errors.Is(err, vaultplugins.ErrDenied) || strings.Contains(err.Error(), plain) {
		t.Fatalf("Fetch(fail) = %v, want ErrDenied without the value", err)
	}
	if _, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "large"}); !errors.Is(err, vaultplugins.ErrResponseTooLarge) {
		t.Fatalf("Fetch(large) = %v, want ErrResponseTooLarge", err)
	}
	d, err := b.Describe(t.Context())
	if err != nil || d.Name != "leaky" {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
}
