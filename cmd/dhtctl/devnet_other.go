//go:build !linux

package main

import "syscall"

// nodeProcAttr puts a devnet node in a process group of its own: a Ctrl-C
// in the terminal reaches devnet only, which then stops the nodes in order.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
