// Command dhtctl is the operator's tool for durachord: certificates and keys,
// client puts and gets, offline database dumps, node status, the ring view,
// a load generator and a local development ring.
//
// Exit codes: 0 success, 1 not found (get), 2 any error, with a one-line
// message on stderr.
package main

import (
	"errors"
	"fmt"
	"github.com/durachord/durachord/internal/buildinfo"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK       = 0
	exitNotFound = 1
	exitError    = 2
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code. Tests call it
// directly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return exitOK
	}
	code := exitError
	var ce cli.ExitCoder
	if errors.As(err, &ce) {
		code = ce.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "dhtctl: "+msg)
	}
	return code
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "dhtctl",
		Usage:                "operate durachord nodes: keys, certificates, puts and gets, dumps, status",
		Version:              buildinfo.Read().String(),
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return cli.Exit(err.Error(), exitError)
		},
		Commands: commands(),
		// No command, or one that does not exist.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return failf("unknown command %q (see dhtctl --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	oneLineUsageErrors(app.Commands, "")
	return app
}

// oneLineUsageErrors makes a bad flag or argument of any command, and a
// missing required flag, an exit-2 error of one line, without the help text
// (which --help shows).
func oneLineUsageErrors(cmds []*cli.Command, parent string) {
	for _, cmd := range cmds {
		name := strings.TrimSpace(parent + " " + cmd.Name)
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return failf("%s: %v (see dhtctl %s --help)", name, err, name)
		}
		var required []string
		for _, f := range cmd.Flags {
			if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
				required = append(required, f.Names()[0])
				unrequire(f)
			}
		}
		if len(required) > 0 {
			before := cmd.Before
			cmd.Before = func(c *cli.Context) error {
				for _, r := range required {
					if !c.IsSet(r) && !c.Bool("help") {
						return failf("%s: --%s is required (see dhtctl %s --help)", name, r, name)
					}
				}
				if before != nil {
					return before(c)
				}
				return nil
			}
		}
		oneLineUsageErrors(cmd.Subcommands, name)
	}
}

// unrequire clears the Required field of the flag kinds dhtctl uses; the
// command's Before checks them instead.
func unrequire(f cli.Flag) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.Required = false
	case *cli.StringSliceFlag:
		f.Required = false
	case *cli.IntFlag:
		f.Required = false
	case *cli.DurationFlag:
		f.Required = false
	case *cli.BoolFlag:
		f.Required = false
	}
}

// commands lists every dhtctl command; each is defined in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		// commands: one line each, kept in this order.
		putCommand(),
		getCommand(),
		benchCommand(),
		statusCommand(),
		ringCommand(),
		dumpCommand(),
		backupCommand(),
		restoreCommand(),
		compactCommand(),
		devnetCommand(),
		caCommand(),
		certCommand(),
		hmacCommand(),
		tokenCommand(),
		completionCommand(),
	}
}

// failf returns an error that makes dhtctl exit with code 2 and the message.
func failf(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), exitError)
}
