package xds

import "errors"

// ErrBundle is returned for a policy bundle that cannot be published or
// applied: a bad module name, data that is not a JSON object, a bundle over
// the size caps, or a resource of the wrong type. The error says which.
var ErrBundle = errors.New("xds: invalid policy bundle")

// ErrOptions is returned for server or subscriber options writ cannot run with.
var ErrOptions = errors.New("xds: invalid options")

// ErrNoBundle is returned by a Subscriber's stream when the control plane
// sends a response for the bundle type that holds no "policy" resource
// among several, or more than one.
var ErrNoBundle = errors.New("xds: response holds no single policy bundle")
