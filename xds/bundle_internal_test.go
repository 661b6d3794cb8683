package xds

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/writ-dev/writ/xds/internal/bundlepb"
)

func TestDecodeBundle(t *testing.T) {
	good := Bundle{Revision: "sha256:0123456789abcdef", Modules: map[string]string{"a.rego": "package a"}, Data: []byte(`{"x":1}`)}
	raw, err := proto.Marshal(good.message())
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBundle(&anypb.Any{TypeUrl: BundleType, Value: raw})
	if err != nil || b.Revision != good.Revision || b.Modules["a.rego"] != "package a" || string(b.Data) != `{"x":1}` {
		t.Fatalf("decodeBundle = %+v, %v; want the bundle back", b, err)
	}
	renamed, _ := proto.Marshal(&bundlepb.Bundle{Name: "other", Revision: "r"})
	noRev, _ := proto.Marshal(&bundlepb.Bundle{Name: BundleName})
	badName, _ := proto.Marshal(&bundlepb.Bundle{Name: BundleName, Revision: "r", Modules: map[string]string{"../x.rego": ""}})
	for name, tc := range map[string]struct {
		res  *anypb.Any
		want string
	}{
		"wrong type":        {&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.Struct", Value: raw}, "resource type"},
		"not protobuf":      {&anypb.Any{TypeUrl: BundleType, Value: []byte{0xff, 0xff}}, "invalid policy bundle"},
		"wrong name":        {&anypb.Any{TypeUrl: BundleType, Value: renamed}, `resource name "other"`},
		"no revision":       {&anypb.Any{TypeUrl: BundleType, Value: noRev}, "no revision"},
		"bad module name":   {&anypb.Any{TypeUrl: BundleType, Value: badName}, "leaves the policy directory"},
		"over the size cap": {&anypb.Any{TypeUrl: BundleType, Value: make([]byte, MaxBundleBytes+65*1024)}, "more than"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeBundle(tc.res)
			if !errors.Is(err, ErrBundle) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decodeBundle = %v, want ErrBundle containing %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

// FuzzDecodeBundle: whatever a control plane sends, decoding returns a
// valid bundle or ErrBundle, never a panic.
func FuzzDecodeBundle(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bundle/*.pb")
	for _, s := range seeds {
		raw, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := decodeBundle(&anypb.Any{TypeUrl: BundleType, Value: raw})
		if err != nil {
			if !errors.Is(err, ErrBundle) {
				t.Fatalf("error %v is not ErrBundle", err)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("decoded bundle does not validate: %v", err)
		}
	})
}

func TestBackoff(t *testing.T) {
	lo, hi := 250*time.Millisecond, 4*time.Second
	for attempt, want := range []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo, hi, hi} {
		for range 50 {
			d := backoff(lo, hi, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := backoff(lo, hi, 1000); d > hi || d < hi/2 {
		t.Errorf("attempt 1000: %v, want capped at %v", d, hi)
	}
}
