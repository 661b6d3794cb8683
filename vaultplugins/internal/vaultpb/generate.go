// Package vaultpb holds the generated protobuf and gRPC code of the vault
// backend plugin protocol.
package vaultpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative vault.proto
