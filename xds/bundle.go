package xds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/writ-dev/writ/xds/internal/bundlepb"
)

// The policy bundle travels as a generated protobuf message of writ's own
// type (xds/internal/bundlepb, from bundle.proto). A generated message
// rather than a well-known type such as google.protobuf.Struct, because the
// type URL in every Any then names what the bytes really are: a client that
// resolves type URLs against its registry decodes it, and the modules keep
// their exact text instead of being re-encoded as JSON values. The message
// carries its name, so go-control-plane names it through GetName.

// BundleType is the xDS type URL of writ's policy bundle resource.
const BundleType = "type.googleapis.com/writ.policy.v1.Bundle"

// BundleName is the name of the one bundle resource writ publishes.
const BundleName = "policy"

// Size caps applied to every bundle, published or received.
const (
	// MaxBundleBytes caps a bundle's encoded size: modules, names and data.
	MaxBundleBytes = 16 << 20
	// MaxModules caps the number of Rego modules in a bundle.
	MaxModules = 4096
	// MaxModuleNameBytes caps a module's file name.
	MaxModuleNameBytes = 512
)

// Bundle is one policy revision as the control plane publishes it: Rego
// modules by file name and the data document.
type Bundle struct {
	// Revision identifies the content. Empty means BundleRevision's hash.
	Revision string
	// Modules maps a slash-separated relative file name ending in .rego to
	// its source.
	Modules map[string]string
	// Data is the base document under data, as a JSON object; empty means
	// no data.
	Data []byte
}

// BundleRevision hashes the module names and sources (sorted by name) and
// the data JSON: "sha256:" and the first 16 hex digits. It is the revision
// a writ replica reports once it has loaded the bundle, when Data is the
// compact JSON encoding with sorted keys (as encoding/json writes a map).
func BundleRevision(modules map[string]string, data []byte) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		src := modules[name]
		fmt.Fprintf(h, "module %s %d\n", strconv.Quote(name), len(src))
		io.WriteString(h, src)
	}
	if len(data) > 0 && !bytes.Equal(data, []byte("{}")) {
		fmt.Fprintf(h, "data %d\n", len(data))
		h.Write(data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Validate checks the bundle's shape: the size caps, module names (relative,
// slash-separated, no "." or ".." parts, ending in .rego, valid UTF-8
// sources) and data (a JSON object). It does not compile the policy.
func (b Bundle) Validate() error {
	if len(b.Modules) > MaxModules {
		return fmt.Errorf("%w: %d modules, more than %d", ErrBundle, len(b.Modules), MaxModules)
	}
	if len(b.Revision) > 256 || !utf8.ValidString(b.Revision) {
		return fmt.Errorf("%w: revision is not a short UTF-8 string", ErrBundle)
	}
	size := len(b.Revision) + len(b.Data)
	for _, name := range slices.Sorted(maps.Keys(b.Modules)) {
		if err := validModuleName(name); err != nil {
			return err
		}
		if !utf8.ValidString(b.Modules[name]) {
			return fmt.Errorf("%w: module %q is not UTF-8", ErrBundle, name)
		}
		size += len(name) + len(b.Modules[name])
	}
	if size > MaxBundleBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBundle, size, MaxBundleBytes)
	}
	if len(b.Data) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b.Data, &obj); err != nil || obj == nil {
			return fmt.Errorf("%w: data is not a JSON object", ErrBundle)
		}
	}
	return nil
}

func validModuleName(name string) error {
	switch {
	case name == "" || len(name) > MaxModuleNameBytes || !utf8.ValidString(name):
		return fmt.Errorf("%w: module name %.64q is empty, too long or not UTF-8", ErrBundle, name)
	case strings.HasPrefix(name, "/") || strings.Contains(name, `\`) || path.Clean(name) != name:
		return fmt.Errorf("%w: module name %q is not a clean relative slash path", ErrBundle, name)
	case name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("%w: module name %q leaves the policy directory", ErrBundle, name)
	case !strings.HasSuffix(name, ".rego"):
		return fmt.Errorf("%w: module name %q does not end in .rego", ErrBundle, name)
	}
	return nil
}

// withRevision returns b with its Revision filled in when empty.
func (b Bundle) withRevision() Bundle {
	if b.Revision == "" {
		b.Revision = BundleRevision(b.Modules, b.Data)
	}
	return b
}

func (b Bundle) message() *bundlepb.Bundle {
	return &bundlepb.Bundle{Name: BundleName, Revision: b.Revision, Modules: b.Modules, Data: b.Data}
}

// decodeBundle reads a bundle resource from the wire and validates it.
func decodeBundle(res *anypb.Any) (Bundle, error) {
	if res.GetTypeUrl() != BundleType {
		return Bundle{}, fmt.Errorf("%w: resource type %q, want %q", ErrBundle, res.GetTypeUrl(), BundleType)
	}
	if len(res.GetValue()) > MaxBundleBytes+64*1024 {
		return Bundle{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBundle, len(res.GetValue()), MaxBundleBytes)
	}
	var m bundlepb.Bundle
	if err := proto.Unmarshal(res.GetValue(), &m); err != nil {
		return Bundle{}, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if m.GetName() != BundleName {
		return Bundle{}, fmt.Errorf("%w: resource name %q, want %q", ErrBundle, m.GetName(), BundleName)
	}
	b := Bundle{Revision: m.GetRevision(), Modules: m.GetModules(), Data: m.GetData()}
	if b.Revision == "" {
		return Bundle{}, fmt.Errorf("%w: no revision", ErrBundle)
	}
	if err := b.Validate(); err != nil {
		return Bundle{}, err
	}
	return b, nil
}
