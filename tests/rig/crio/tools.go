//go:build tools

// Package tools makes `go mod tidy` keep CRI-O's command and everything it needs in go.sum.
package tools

import _ "github.com/cri-o/cri-o/cmd/crio"
