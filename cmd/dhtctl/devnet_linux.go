package main

import "syscall"

// nodeProcAttr puts a devnet node in a process group of its own (a Ctrl-C in
// the terminal reaches devnet only, which then stops the nodes in order) and
// has the kernel stop it should devnet itself be killed, so that no node
// outlives the devnet that started it.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
