package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/crypto"
)

// caCommand is `dhtctl ca init`.
func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "manage the cluster certificate authority",
		Subcommands: []*cli.Command{{
			Name:      "init",
			Usage:     "create a new cluster CA (ca.crt and ca.key) in a directory",
			UsageText: "dhtctl ca init --dir DIR [--json]",
			Description: `Creates a new cluster certificate authority: an ECDSA P-256 key (ca.key,
mode 0600) and a self-signed certificate valid for 10 years (ca.crt). Every
node certificate of the cluster is issued by it (dhtctl cert issue); nodes
accept only peers whose certificate it signed. Keep ca.key offline: nodes
need only ca.crt. Refuses to overwrite an existing CA.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Usage: "`DIR` to write ca.crt and ca.key into (created if missing)", Required: true},
				&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return failf("ca init: unexpected argument %q", c.Args().First())
				}
				dir := c.String("dir")
				if dir == "" {
					return failf("ca init: --dir is empty")
				}
				if err := crypto.InitCA(dir); err != nil {
					return failf("ca init: %v", err)
				}
				if c.Bool("json") {
					return printCAJSON(c.App.Writer, map[string]string{
						"dir":     dir,
						"ca_cert": filepath.Join(dir, crypto.CACertFile),
						"ca_key":  filepath.Join(dir, crypto.CAKeyFile),
					})
				}
				_, err := fmt.Fprintf(c.App.Writer, "cluster CA written to %s (%s, %s)\n", dir, crypto.CACertFile, crypto.CAKeyFile)
				return err
			},
		}},
	}
}

// certCommand is `dhtctl cert issue`.
func certCommand() *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "issue and renew node certificates",
		Subcommands: []*cli.Command{{
			Name:      "issue",
			Usage:     "issue a node certificate signed by the cluster CA; prints the node ID",
			UsageText: "dhtctl cert issue --ca DIR --address HOST:PORT --out DIR [--force] [--json]",
			Description: `Creates a node key and a certificate signed by the CA in --ca, valid for
2 years as TLS server and client, with the host of --address (the node's
--p2p-address as its peers dial it) as subject alternative name. Writes
ca.crt, node.crt and node.key (mode 0600) into --out, the directory dhtd's
--tls-dir expects, and prints the node ID: the SHA-256 of the certificate's
public key, which fixes the node's position on the ring. Refuses to
overwrite existing files unless --force is given.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "ca", Usage: "`DIR` holding ca.crt and ca.key (from dhtctl ca init)", Required: true},
				&cli.StringFlag{Name: "address", Usage: "the node's peer address as its peers dial it, `HOST:PORT`; HOST goes into the certificate", Required: true},
				&cli.StringFlag{Name: "out", Usage: "`DIR` to write ca.crt, node.crt and node.key into (created if missing)", Required: true},
				&cli.BoolFlag{Name: "force", Usage: "overwrite existing files in --out"},
				&cli.BoolFlag{Name: "json", Usage: `print {"id":..,"address":..,"dir":..}`},
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return failf("cert issue: unexpected argument %q", c.Args().First())
				}
				out := c.String("out")
				if out == "" {
					return failf("cert issue: --out is empty")
				}
				ca, err := crypto.LoadCA(c.String("ca"))
				if err != nil {
					return failf("cert issue: load CA: %v", err)
				}
				nc, err := ca.Issue(c.String("address"))
				if err != nil {
					return failf("cert issue: %v", err)
				}
				if err := nc.WriteDir(out, c.Bool("force")); err != nil {
					if errors.Is(err, crypto.ErrExists) {
						return failf("cert issue: %v; use --force to replace", err)
					}
					return failf("cert issue: %v", err)
				}
				if c.Bool("json") {
					return printCAJSON(c.App.Writer, map[string]string{
						"id":      nc.ID.String(),
						"address": nc.Address,
						"dir":     out,
					})
				}
				_, err = fmt.Fprintln(c.App.Writer, nc.ID.String())
				return err
			},
		}, {
			Name:      "renew",
			Usage:     "renew a node certificate for the same key: the node keeps its ID",
			UsageText: "dhtctl cert renew --ca DIR --dir TLSDIR [--address HOST:PORT] [--json]",
			Description: `Signs a new certificate, valid for 2 years, for the node key already in
--dir (node.key), and replaces node.crt and ca.crt there. The public key is
unchanged, so the node ID and the node's place on the ring stay the same.
The address defaults to the one in the current certificate. A running node
loads the new certificate on SIGHUP (systemctl reload durachord), without a
restart; its open connections keep the old one. Prints the node ID.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "ca", Usage: "`DIR` holding ca.crt and ca.key (from dhtctl ca init)", Required: true},
				&cli.StringFlag{Name: "dir", Usage: "the node's TLS `DIR` holding node.key and node.crt", Required: true},
				&cli.StringFlag{Name: "address", Usage: "the node's peer address, `HOST:PORT` (default: the current certificate's)"},
				&cli.BoolFlag{Name: "json", Usage: `print {"id":..,"address":..,"dir":..}`},
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return failf("cert renew: unexpected argument %q", c.Args().First())
				}
				ca, err := crypto.LoadCA(c.String("ca"))
				if err != nil {
					return failf("cert renew: load CA: %v", err)
				}
				dir := c.String("dir")
				nc, err := ca.Renew(dir, c.String("address"))
				if err != nil {
					return failf("cert renew: %v", err)
				}
				if err := nc.WriteDir(dir, true); err != nil {
					return failf("cert renew: %v", err)
				}
				if c.Bool("json") {
					return printCAJSON(c.App.Writer, map[string]string{
						"id":      nc.ID.String(),
						"address": nc.Address,
						"dir":     dir,
					})
				}
				_, err = fmt.Fprintln(c.App.Writer, nc.ID.String())
				return err
			},
		}},
	}
}

// hmacCommand is `dhtctl hmac new`.
func hmacCommand() *cli.Command {
	return &cli.Command{
		Name:  "hmac",
		Usage: "manage cluster HMAC keys",
		Subcommands: []*cli.Command{newSecretCommand(secretKind{
			group:     "hmac",
			jsonKey:   "key",
			usage:     "print a new random cluster HMAC key (base64)",
			usageText: "dhtctl hmac new [--json] >> hmac.keys\n   dhtctl hmac new --out FILE",
			description: `Prints a new random 32-byte key, base64 encoded: one line of the keys file
that dhtd's --hmac-keys reads (mode 0600). The first key of the file signs
every frame between nodes, all keys verify. To rotate without downtime: add
the new key as second line on every node and reload (SIGHUP), then move it
first everywhere and reload, then remove the old key.
With --out, the key is written to a new FILE (mode 0600) instead, for
callers without a shell (containers).`,
			generate: crypto.NewHMACKey,
		})},
	}
}

// tokenCommand is `dhtctl token new`.
func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "manage admin tokens",
		Subcommands: []*cli.Command{newSecretCommand(secretKind{
			group:     "token",
			jsonKey:   "token",
			usage:     "make a new random admin token",
			usageText: "dhtctl token new --out FILE\n   dhtctl token new [--json]",
			description: `Makes a new random admin token (32 bytes from crypto/rand, base64url) and
writes it to a new FILE with mode 0600. Point a node's admin.token_file at
the file (a restart takes it up) and give it to dhtctl with
--admin-token-file: every admin endpoint but /healthz, /readyz and /metrics
then wants it. Without --out the token is printed.`,
			generate: crypto.NewToken,
		})},
	}
}

// secretKind describes a `dhtctl GROUP new` command that makes one random
// secret line.
type secretKind struct {
	group, jsonKey                string
	usage, usageText, description string
	generate                      func() (string, error)
}

// newSecretCommand is `dhtctl GROUP new [--json] [--out FILE]`: it prints
// the new secret, as {"KEY":..} with --json, or writes it to a new FILE
// (mode 0600).
func newSecretCommand(k secretKind) *cli.Command {
	name := k.group + " new"
	return &cli.Command{
		Name:        "new",
		Usage:       k.usage,
		UsageText:   k.usageText,
		Description: k.description,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: fmt.Sprintf(`print {"%s":..}`, k.jsonKey)},
			&cli.StringFlag{Name: "out", Usage: fmt.Sprintf("write the %s to `FILE` (created with mode 0600, must not exist) instead of printing it", k.jsonKey)},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return failf("%s: unexpected argument %q", name, c.Args().First())
			}
			secret, err := k.generate()
			if err != nil {
				return failf("%s: %v", name, err)
			}
			if out := c.String("out"); out != "" {
				if err := writeNewFile(out, []byte(secret+"\n")); err != nil {
					return failf("%s: %v", name, err)
				}
				return nil
			}
			if c.Bool("json") {
				return printCAJSON(c.App.Writer, map[string]string{k.jsonKey: secret})
			}
			_, err = fmt.Fprintln(c.App.Writer, secret)
			return err
		},
	}
}

// writeNewFile creates path (mode 0600; it must not exist) holding data, synced.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path) // best effort: the write error is what matters
	}
	return err
}

func printCAJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
