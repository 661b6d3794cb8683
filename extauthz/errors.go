package extauthz

import "errors"

var (
	// ErrConfig is returned by New and Config.Validate for an unusable configuration.
	ErrConfig = errors.New("extauthz: invalid configuration")
	// ErrNoAttributes is a CheckRequest without attributes: nothing to decide on.
	ErrNoAttributes = errors.New("extauthz: check request has no attributes")
)
