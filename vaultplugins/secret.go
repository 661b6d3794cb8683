package vaultplugins

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "REDACTED"

// Secret holds a credential value. It prints as REDACTED through fmt (every
// verb, including %q, %x and %#v), slog (LogValue), encoding/json and every
// encoder that honours encoding.TextMarshaler. Reveal is the only way to the
// value.
type Secret string

// Reveal returns the real value. Call it only where the value leaves writ on
// purpose, such as an upstream request header.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so no verb reaches the value.
func (Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, `"`+redacted+`"`)
		return
	}
	io.WriteString(f, redacted)
}

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
