//go:build !unix

package storetest

import "time"

// ProcessCPU is not read here.
func ProcessCPU() (time.Duration, bool) { return 0, false }
