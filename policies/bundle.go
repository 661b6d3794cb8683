package policies

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bundle is one policy revision in memory: Rego modules by file name and the
// data document they see under data.
type Bundle struct {
	// Modules maps a file name (slash-separated, relative to the policy
	// directory) to its Rego source.
	Modules map[string]string
	// Data is the base document under data, with every data file already
	// placed at its folder's path.
	Data map[string]any
}

//go:embed default/*.rego
var defaultFS embed.FS

// DefaultBundle returns the embedded default policy (default/authz.rego),
// without its tests.
func DefaultBundle() Bundle {
	b, err := readTree(defaultFS, "default", "", false)
	if err != nil {
		panic("policies: embedded default policy: " + err.Error())
	}
	return b
}

// ReadBundle reads a policy directory: every .rego file except *_test.rego,
// and every data file (.json, .yaml, .yml). A data file's content is placed
// at its folder's path relative to dir, as OPA does: a/b/data.json becomes
// data.a.b, and a data file at dir's root must hold an object. Files and
// folders whose names start with "." are skipped.
func ReadBundle(dir string) (Bundle, error) {
	return readTree(os.DirFS(dir), ".", dir, false)
}

// readTree reads root inside fsys; errors name files under display.
// withTests also keeps *_test.rego files.
func readTree(fsys fs.FS, root, display string, withTests bool) (Bundle, error) {
	b := Bundle{Modules: map[string]string{}, Data: map[string]any{}}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel := p
		if root != "." {
			rel = strings.TrimPrefix(p, root+"/")
		}
		switch ext := path.Ext(p); ext {
		case ".rego":
			if !withTests && strings.HasSuffix(p, "_test.rego") {
				return nil
			}
			src, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			b.Modules[rel] = string(src)
		case ".json", ".yaml", ".yml":
			src, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			doc, err := parseDataFile(displayName(display, rel), ext, src)
			if err != nil {
				return err
			}
			return placeData(b.Data, rel, displayName(display, rel), doc)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCompile) {
			return Bundle{}, err
		}
		return Bundle{}, fmt.Errorf("policies: read %s: %w", displayName(display, root), err)
	}
	return b, nil
}

// yamlLine splits "line 3: message" from a YAML error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// parseDataFile decodes a JSON or YAML data file into JSON-shaped values
// (numbers from JSON stay json.Number so large integers keep their digits).
func parseDataFile(name, ext string, src []byte) (any, error) {
	if ext == ".json" {
		dec := json.NewDecoder(bytes.NewReader(src))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: invalid JSON: %s", ErrCompile, name, jsonErrorLine(src, err), jsonErrorText(err))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("%w: %s:%d: invalid JSON: unexpected data after the top-level value", ErrCompile, name, lineAt(src, dec.InputOffset()))
		}
		return doc, nil
	}
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%w: %s:%s: invalid YAML: %s", ErrCompile, name, m[1], m[2])
		}
		return nil, fmt.Errorf("%w: %s: invalid YAML: %s", ErrCompile, name, msg)
	}
	doc, err := normalizeYAML(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrCompile, name, err)
	}
	return doc, nil
}

func jsonErrorLine(src []byte, err error) int {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return lineAt(src, syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return lineAt(src, typ.Offset)
	}
	return lineAt(src, int64(len(src)))
}

func jsonErrorText(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of file"
	}
	return err.Error()
}

func lineAt(src []byte, offset int64) int {
	offset = min(max(offset, 0), int64(len(src)))
	return bytes.Count(src[:offset], []byte("\n")) + 1
}

// normalizeYAML turns decoded YAML into JSON-shaped values.
func normalizeYAML(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			n, err := normalizeYAML(e)
			if err != nil {
				return nil, err
			}
			v[k] = n
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key of type %T: data keys must be strings", k)
			}
			n, err := normalizeYAML(e)
			if err != nil {
				return nil, err
			}
			m[ks] = n
		}
		return m, nil
	case []any:
		for i, e := range v {
			n, err := normalizeYAML(e)
			if err != nil {
				return nil, err
			}
			v[i] = n
		}
		return v, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case nil, bool, string, int, int64, uint64, float64:
		return v, nil
	default:
		return nil, fmt.Errorf("value of type %T is not JSON data", v)
	}
}

// displayName is how errors name a file read from dir.
func displayName(dir, name string) string {
	if dir == "" {
		return name
	}
	return filepath.Join(dir, filepath.FromSlash(name))
}

// placeData merges doc into data at the folder path of rel; errors name
// the file as name.
func placeData(data map[string]any, rel, name string, doc any) error {
	dir := path.Dir(rel)
	var keys []string
	if dir != "." {
		keys = strings.Split(dir, "/")
	}
	if len(keys) == 0 {
		obj, ok := doc.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: %s: a data file at the policy root must hold an object, got %s", ErrCompile, name, jsonTypeName(doc))
		}
		return mergeData(data, obj, "data", name)
	}
	node := data
	for i, k := range keys[:len(keys)-1] {
		next, ok := node[k]
		if !ok {
			m := map[string]any{}
			node[k] = m
			node = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: %s: data.%s is already defined by another data file", ErrCompile, name, strings.Join(keys[:i+1], "."))
		}
		node = m
	}
	last := keys[len(keys)-1]
	return mergeData(node, map[string]any{last: doc}, "data."+strings.Join(keys[:len(keys)-1], "."), name)
}

func mergeData(dst, src map[string]any, at, name string) error {
	at = strings.TrimSuffix(at, ".")
	for _, k := range slices.Sorted(maps.Keys(src)) {
		v := src[k]
		old, ok := dst[k]
		if !ok {
			dst[k] = v
			continue
		}
		om, ok1 := old.(map[string]any)
		nm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: %s: %s.%s is already defined by another data file", ErrCompile, name, at, k)
		}
		if err := mergeData(om, nm, at+"."+k, name); err != nil {
			return err
		}
	}
	return nil
}

// revisionOf hashes the module names and sources (sorted by name) and the
// canonical JSON of the data document. File times play no part.
func revisionOf(b Bundle) (string, error) {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(b.Modules)) {
		src := b.Modules[name]
		fmt.Fprintf(h, "module %s %d\n", strconv.Quote(name), len(src))
		io.WriteString(h, src)
	}
	if len(b.Data) > 0 {
		bs, err := json.Marshal(b.Data) // map keys are sorted
		if err != nil {
			return "", fmt.Errorf("%w: data: %s", ErrCompile, err)
		}
		fmt.Fprintf(h, "data %d\n", len(bs))
		h.Write(bs)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// jsonTypeName names the JSON type of a decoded value.
func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return "number"
	}
}
