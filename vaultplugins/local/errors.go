package local

import "errors"

var (
	// ErrWrongKey: a value is sealed under a key the store was not given, or
	// fails to open under the key its ID names.
	ErrWrongKey = errors.New("local vault: value sealed under an unknown key")
	// ErrKey: key material is missing, not base64 or not 32 bytes, or its
	// file is readable by group or others.
	ErrKey = errors.New("local vault: invalid key")
	// ErrInvalidRef: the reference is empty, too long or has control
	// characters.
	ErrInvalidRef = errors.New("local vault: invalid reference")
	// ErrInvalidValue: the value is empty or larger than MaxValueBytes.
	ErrInvalidValue = errors.New("local vault: invalid value")
)
