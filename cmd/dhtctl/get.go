package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/durachord/durachord/api"
	"github.com/urfave/cli/v2"
)

// defaultAPI is the client API address dhtd listens on by default.
const defaultAPI = "127.0.0.1:7401"

func apiFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "api",
		Usage:   "client API `HOST:PORT` of a running dhtd",
		Value:   defaultAPI,
		EnvVars: []string{"DURACHORD_API"},
	}
}

func timeoutFlag() *cli.DurationFlag {
	return &cli.DurationFlag{
		Name:  "timeout",
		Usage: "give up after this long (connect and requests)",
		Value: 10 * time.Second,
	}
}

const keyHelp = `KEY is 64 hex digits (the 32-byte key itself), or any other string of at
most 32 bytes, zero-padded to 32 bytes as the course's test client does. A
64-character string of hex digits is always read as hex.`

// parseKey reads a key argument: 64 hex digits, or a string of at most 32
// bytes zero-padded.
func parseKey(s string) ([api.KeySize]byte, error) {
	var k [api.KeySize]byte
	if len(s) == 2*api.KeySize {
		if _, err := hex.Decode(k[:], []byte(s)); err == nil {
			return k, nil
		}
	}
	if s == "" {
		return k, errors.New("key is empty")
	}
	if len(s) > api.KeySize {
		return k, fmt.Errorf("key %q is %d bytes: want 64 hex digits or a string of at most %d bytes", s, len(s), api.KeySize)
	}
	copy(k[:], s)
	return k, nil
}

// jsonValue is a value as --json prints it: text when it is valid UTF-8,
// base64 otherwise.
type jsonValue struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Encoding string `json:"encoding"` // "utf-8" or "base64"
}

func newJSONValue(k [api.KeySize]byte, v []byte) jsonValue {
	j := jsonValue{Key: hex.EncodeToString(k[:]), Value: string(v), Encoding: "utf-8"}
	if !utf8.Valid(v) {
		j.Value, j.Encoding = base64.StdEncoding.EncodeToString(v), "base64"
	}
	return j
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "read the value stored under a key",
		ArgsUsage: "KEY",
		Description: `Sends one DHT GET to a node's client API and prints the value, raw, on
stdout. Exits 1 with "not found" when the node answers FAILURE (no live
value: absent, expired, or not reachable within the node's lookup deadline).

` + keyHelp + `

With --json it prints {"key":HEX,"value":...,"encoding":"utf-8"|"base64"}.`,
		Flags: []cli.Flag{
			apiFlag(),
			timeoutFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the key and value as one JSON object"},
		},
		Action: func(cctx *cli.Context) error {
			if cctx.NArg() != 1 {
				return failf("get: want one argument, KEY")
			}
			k, err := parseKey(cctx.Args().First())
			if err != nil {
				return failf("get: %v", err)
			}
			ctx, cancel := context.WithTimeout(cctx.Context, cctx.Duration("timeout"))
			defer cancel()
			addr := cctx.String("api")
			c, err := api.Dial(ctx, addr)
			if err != nil {
				return failf("get: %v", err)
			}
			defer c.Close()
			v, err := c.Get(ctx, k)
			if errors.Is(err, api.ErrNotFound) {
				return cli.Exit("not found", exitNotFound)
			}
			if err != nil {
				return failf("get from %s: %v", addr, err)
			}
			out := cctx.App.Writer
			if cctx.Bool("json") {
				return writeJSON(out, newJSONValue(k, v))
			}
			if _, err := out.Write(v); err != nil {
				return failf("get: write value: %v", err)
			}
			return nil
		},
	}
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return failf("encode json: %v", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return failf("write: %v", err)
	}
	return nil
}
