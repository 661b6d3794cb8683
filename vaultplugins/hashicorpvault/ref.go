package hashicorpvault

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxRefLen caps a reference's length in bytes.
const MaxRefLen = 512

// Ref is a parsed reference: which secret, which key of its data and which
// version.
//
// The syntax is path[#field][@version], in that order:
//
//	salesforce/users/alice              latest version, the configured field
//	salesforce/users/alice#token        latest version, field "token"
//	salesforce/users/alice@3            version 3, the configured field
//	salesforce/users/alice#token@3      version 3, field "token"
//
// The path is relative to the KV v2 mount: segments separated by single
// slashes, none empty, "." or "..", with no leading or trailing slash. '#'
// and '@' are reserved: each may appear at most once, '#' before '@'. The
// version is a decimal integer from 1. Control characters, spaces, '?', '%'
// and '\' are refused anywhere.
type Ref struct {
	// Path is the secret's path under the mount.
	Path string
	// Field is the key of the secret's data to use; empty means the
	// configured default.
	Field string
	// Version pins a KV version; 0 means the latest.
	Version int
}

// String formats r in the reference syntax.
func (r Ref) String() string {
	s := r.Path
	if r.Field != "" {
		s += "#" + r.Field
	}
	if r.Version > 0 {
		s += "@" + strconv.Itoa(r.Version)
	}
	return s
}

// ParseRef parses a reference in the syntax path[#field][@version].
func ParseRef(s string) (Ref, error) {
	if s == "" || len(s) > MaxRefLen {
		return Ref{}, fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidRef, MaxRefLen)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f || strings.ContainsRune(`?%\`, r) || (r >= 0x80 && r <= 0x9f) || r == '\uFFFD' {
			return Ref{}, fmt.Errorf("%w: %q has a space, control or reserved character", ErrInvalidRef, s)
		}
	}
	var ref Ref
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		v := rest[i+1:]
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || v[0] == '0' || v[0] == '+' || strings.ContainsAny(v, "@#") {
			return Ref{}, fmt.Errorf("%w: %q: version must be a decimal integer from 1 after the only '@'", ErrInvalidRef, s)
		}
		ref.Version = n
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		ref.Field = rest[i+1:]
		if ref.Field == "" || strings.ContainsRune(ref.Field, '#') {
			return Ref{}, fmt.Errorf("%w: %q: field after the only '#' must not be empty", ErrInvalidRef, s)
		}
		rest = rest[:i]
	}
	if err := validPath(rest); err != nil {
		return Ref{}, fmt.Errorf("%w: %q: %v", ErrInvalidRef, s, err)
	}
	ref.Path = rest
	return ref, nil
}

// validPath reports whether p is slash-separated segments, none empty, "."
// or "..".
func validPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("empty path segment or leading/trailing slash")
		case ".", "..":
			return fmt.Errorf("path segment %q", seg)
		}
	}
	return nil
}
