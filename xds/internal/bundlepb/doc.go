// Package bundlepb holds the generated protobuf message of writ's policy
// bundle, the xDS resource writ.policy.v1.Bundle.
package bundlepb

//go:generate protoc --go_out=. --go_opt=paths=source_relative bundle.proto
