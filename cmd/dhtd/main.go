// Command dhtd runs a durachord node: a Chord ring member that keeps its
// records in an embedded database, serves the course's DHT client protocol on
// its API address, and talks to its peers over mutually authenticated TLS.
//
// Configuration comes from defaults, then the file given with --config (TOML,
// or a course-style INI file when the name ends in .ini), then the flags.
// SIGTERM or SIGINT leaves the ring gracefully; a second one exits at once.
// SIGHUP reloads the log level, the API limits, the HMAC keyring and the
// node certificate and CA bundle (tls_dir).
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/durachord/durachord/internal/buildinfo"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/config"
)

func main() {
	os.Exit(run(os.Args, os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	app := newApp(stderr, serve)
	if err := app.Run(args); err != nil {
		fmt.Fprintln(stderr, "dhtd: "+err.Error())
		var ce cli.ExitCoder
		if errors.As(err, &ce) && ce.ExitCode() != 0 {
			return ce.ExitCode()
		}
		return 1
	}
	return 0
}

// serveFunc runs a node with a validated configuration; reload loads the
// configuration again (for SIGHUP).
type serveFunc func(ctx context.Context, cfg config.Config, reload func() (config.Config, error), stderr io.Writer) error

func newApp(stderr io.Writer, serve serveFunc) *cli.App {
	return &cli.App{
		Name:      "dhtd",
		Usage:     "run a durachord DHT node",
		Version:   buildinfo.Read().String(),
		UsageText: "dhtd [--config FILE] [--p2p-address HOST:PORT] [--bootstrap HOST:PORT ...] [options]",
		Description: "Runs one node of a durachord ring. Values come from the defaults, then the --config file\n" +
			"(TOML; a course-style INI file when the name ends in .ini), then the flags below.\n" +
			"Without --bootstrap the node rejoins through the peers it remembers, or starts a new ring.\n" +
			"SIGTERM/SIGINT: graceful leave (a second signal exits at once). SIGHUP: reload log level,\n" +
			"API limits, the HMAC keyring and the TLS files (tls_dir).",
		Writer:          stderr,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		// One line for a bad flag, as for every other error.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%v (see dhtd --help)", err)
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE` (TOML, or INI if it ends in .ini)"},
			&cli.StringFlag{Name: "p2p-address", Aliases: []string{"dht-address"}, Usage: "`HOST:PORT` to listen on for peers and to announce to them (p2p_address)"},
			&cli.StringFlag{Name: "api-address", Usage: "`HOST:PORT` of the client API; empty for none (api_address)"},
			&cli.StringSliceFlag{Name: "bootstrap", Aliases: []string{"bootstrap-node"}, Usage: "`HOST:PORT` of a ring member to join through; repeatable (bootstrap)"},
			&cli.StringFlag{Name: "data-dir", Usage: "`DIR` for the database and the node's secret (data_dir)"},
			&cli.StringFlag{Name: "admin-address", Usage: "`HOST:PORT` of the admin HTTP server; empty for none (admin_address)"},
			&cli.StringFlag{Name: "admin-token-file", Usage: "`FILE` (mode 0600) with the admin bearer token; required off loopback (admin.token_file)"},
			&cli.StringFlag{Name: "tls-dir", Usage: "`DIR` holding ca.crt, node.crt and node.key (tls_dir)"},
			&cli.StringFlag{Name: "hmac-keys", Usage: "`FILE` with one base64 cluster key a line; the first signs (hmac_keys)"},
			&cli.StringFlag{Name: "log-level", Usage: "trace, debug, info, warn or error (log_level)"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json (log_format)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (dhtd takes flags only; see --help)", c.Args().First())
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			return serve(c.Context, cfg, func() (config.Config, error) { return loadConfig(c) }, stderr)
		},
	}
}

// loadConfig builds the configuration: defaults, then the file, then flags.
func loadConfig(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	applyFlags(c, &cfg)
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// applyFlags sets the fields whose flags were given on the command line.
func applyFlags(c *cli.Context, cfg *config.Config) {
	str := map[string]*string{
		"p2p-address":      &cfg.P2PAddress,
		"api-address":      &cfg.APIAddress,
		"data-dir":         &cfg.DataDir,
		"admin-address":    &cfg.AdminAddress,
		"admin-token-file": &cfg.Admin.TokenFile,
		"tls-dir":          &cfg.TLSDir,
		"hmac-keys":        &cfg.HMACKeys,
		"log-level":        &cfg.LogLevel,
		"log-format":       &cfg.LogFormat,
	}
	for name, field := range str {
		if c.IsSet(name) {
			*field = c.String(name)
		}
	}
	if c.IsSet("bootstrap") {
		cfg.Bootstrap = c.StringSlice("bootstrap")
	}
}
