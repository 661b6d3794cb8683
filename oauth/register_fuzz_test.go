package oauth_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/writ-dev/writ/agents"
	"github.com/writ-dev/writ/oauth"
)

// FuzzDecodeClientMetadata feeds registration bodies to the parser: it
// never panics, refuses with an RFC 7591 code, and what it accepts is valid,
// encodes without null, "" or {}, and decodes again to the same metadata.
func FuzzDecodeClientMetadata(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "register", "*.json"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := oauth.DecodeClientMetadata(body)
		if err != nil {
			me, ok := errors.AsType[*agents.MetadataError](err)
			if !ok {
				t.Fatalf("error %v is not a MetadataError", err)
			}
			switch me.Code {
			case agents.CodeInvalidClientMetadata, agents.CodeInvalidRedirectURI:
			default:
				t.Fatalf("code %q", me.Code)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted metadata does not validate: %v", err)
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(enc, &v); err != nil {
			t.Fatal(err)
		}
		noEmptyValues(t, "metadata", v)
		again, err := oauth.DecodeClientMetadata(enc)
		if err != nil {
			t.Fatalf("encoded metadata %s refused: %v", enc, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed the metadata:\n%+v\n%+v", m, again)
		}
	})
}
