//go:build !linux

package main

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// only the benchmark, which stops its children in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
