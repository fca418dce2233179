package main

import "syscall"

// childAttr puts a child in its own process group, so that Ctrl-C reaches
// only the benchmark, which stops its children in order; and kills it should
// the benchmark itself be killed.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
