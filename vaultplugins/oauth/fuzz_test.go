package oauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/writ-dev/writ/vaultplugins"
	"github.com/writ-dev/writ/vaultplugins/oauth"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref, reqUser, user, provider string
		want                         error
	}{
		{"github", "alice", "alice", "github", nil},
		{"users/alice/github", "", "alice", "github", nil},
		{"users/alice/github", "alice", "alice", "github", nil},
		{"users/team/alice/github", "", "team/alice", "github", nil},
		{"users/alice/github", "bob", "", "", vaultplugins.ErrDenied},
		{"github", "", "", "", oauth.ErrInvalidRef},
		{"users/alice", "", "", "", oauth.ErrInvalidRef},
		{"users//github", "", "", "", oauth.ErrInvalidRef},
		{"users/alice/", "", "", "", oauth.ErrInvalidRef},
		{"git hub", "alice", "", "", oauth.ErrInvalidRef},
		{"github", "al\nice", "", "", oauth.ErrInvalidRef},
		{"", "alice", "", "", oauth.ErrInvalidRef},
	} {
		user, provider, err := oauth.ParseRef(tc.ref, tc.reqUser)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || user != tc.user || provider != tc.provider {
			t.Errorf("ParseRef(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.ref, tc.reqUser, user, provider, err, tc.user, tc.provider, tc.want)
		}
	}
}

// Seeds are in testdata/fuzz/FuzzParseRef.
func FuzzParseRef(f *testing.F) {
	f.Fuzz(func(t *testing.T, ref, reqUser string) {
		user, provider, err := oauth.ParseRef(ref, reqUser)
		if err != nil {
			if user != "" || provider != "" {
				t.Fatalf("error with results %q %q", user, provider)
			}
			return
		}
		if user == "" || provider == "" || strings.ContainsAny(provider, "/ \x00") || strings.ContainsRune(user, 0) {
			t.Fatalf("ParseRef(%q, %q) = %q, %q", ref, reqUser, user, provider)
		}
		if reqUser != "" && user != reqUser {
			t.Fatalf("ParseRef(%q, %q) crossed users: %q", ref, reqUser, user)
		}
		if ref != provider && ref != oauth.RefPrefix+user+"/"+provider {
			t.Fatalf("ParseRef(%q) = %q, %q does not rebuild the reference", ref, user, provider)
		}
	})
}
