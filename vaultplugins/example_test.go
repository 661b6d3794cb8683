package vaultplugins_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/plugintest"
)

type fixed struct{}

func (fixed) Fetch(_ context.Context, req vaultplugins.Request) (vaultplugins.Credential, error) {
	if req.Ref != "github" {
		return vaultplugins.Credential{}, fmt.Errorf("%w: %q", vaultplugins.ErrNotFound, req.Ref)
	}
	return vaultplugins.Credential{Value: "ghp_example", Format: "Bearer {value}"}, nil
}

func (fixed) Describe(context.Context) (vaultplugins.Description, error) {
	return vaultplugins.Description{Name: "fixed", Version: "1.0.0"}, nil
}

func ExampleHost() {
	ctx := context.Background()
	h, err := vaultplugins.NewHost(ctx, vaultplugins.HostConfig{
		Backends: map[string]vaultplugins.Backend{"fixed": fixed{}},
	})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	cred, err := h.Fetch(ctx, vaultplugins.Request{Backend: "fixed", Ref: "github", User: "alice"})
	if err != nil {
		panic(err)
	}
	header, value, _ := cred.Render()
	fmt.Println(header, value)
	fmt.Println(header, value.Reveal())
	// Output:
	// Authorization REDACTED
	// Authorization Bearer ghp_example
}

func ExampleSecret() {
	s := vaultplugins.Secret("hunter2")
	fmt.Printf("%v %q %#v\n", s, s, s)
	// Output: REDACTED "REDACTED" REDACTED
}

func TestFixedBackendThroughPlugintest(t *testing.T) {
	b := plugintest.New(t, fixed{})
	if _, err := b.Fetch(t.Context(), vaultplugins.Request{Ref: "gitlab"}); err == nil {
		t.Fatal("want ErrNotFound")
	}
}
