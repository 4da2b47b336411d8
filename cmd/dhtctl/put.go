package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/urfave/cli/v2"
)

// maxTTL is the largest TTL the protocol carries: u16 seconds.
const maxTTL = math.MaxUint16 * time.Second

// ttlSeconds converts a TTL flag to the protocol's seconds, rounding up so
// that a record never lives shorter than asked.
func ttlSeconds(d time.Duration) (uint16, error) {
	if d < 0 {
		return 0, fmt.Errorf("ttl %v is negative", d)
	}
	if d > maxTTL {
		return 0, fmt.Errorf("ttl %v exceeds the protocol maximum of %v (%d s)", d, maxTTL, math.MaxUint16)
	}
	return uint16((d + time.Second - 1) / time.Second), nil
}

func replicationFlag() *cli.UintFlag {
	return &cli.UintFlag{
		Name:  "replication",
		Usage: "requested number of copies, 1..255; the node cuts it to its maximum and the ring size (0: the node's default)",
	}
}

func ttlFlag() *cli.DurationFlag {
	return &cli.DurationFlag{
		Name:  "ttl",
		Usage: "lifetime of the record, whole seconds (rounded up), at most 18h12m15s; the node cuts it to its maximum (0: the node's default)",
	}
}

func replicationValue(cctx *cli.Context) (uint8, error) {
	r := cctx.Uint("replication")
	if r > math.MaxUint8 {
		return 0, fmt.Errorf("replication %d exceeds the protocol maximum of %d", r, math.MaxUint8)
	}
	return uint8(r), nil
}

type putResult struct {
	Key         string `json:"key"`
	Size        int    `json:"size"`
	TTL         uint16 `json:"ttl_seconds"`
	Replication uint8  `json:"replication"`
	// Newer is true when the confirming GET saw a newer value than ours.
	Newer bool `json:"newer"`
}

func putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "store a value under a key",
		ArgsUsage: "KEY VALUE|-",
		Description: `Sends one DHT PUT to a node's client API; VALUE "-" reads the value from
stdin. Values hold 1..65495 bytes.

The protocol has no reply to a PUT, so put confirms it with a GET of the same
key on the same connection (the node guarantees read-your-writes there) and
fails (exit 2) if that GET answers FAILURE.

` + keyHelp + `

--ttl and --replication are hints: 0 leaves them to the node's defaults, and
the node cuts them to its configured maxima.`,
		Flags: []cli.Flag{
			apiFlag(),
			ttlFlag(),
			replicationFlag(),
			timeoutFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print the outcome as one JSON object"},
		},
		Action: func(cctx *cli.Context) error {
			if cctx.NArg() != 2 {
				return failf("put: want two arguments, KEY and VALUE (or - for stdin)")
			}
			k, err := parseKey(cctx.Args().Get(0))
			if err != nil {
				return failf("put: %v", err)
			}
			ttl, err := ttlSeconds(cctx.Duration("ttl"))
			if err != nil {
				return failf("put: %v", err)
			}
			repl, err := replicationValue(cctx)
			if err != nil {
				return failf("put: %v", err)
			}
			value := []byte(cctx.Args().Get(1))
			if cctx.Args().Get(1) == "-" {
				value, err = io.ReadAll(io.LimitReader(cctx.App.Reader, api.MaxValueSize+1))
				if err != nil {
					return failf("put: read value from stdin: %v", err)
				}
			}
			if len(value) == 0 || len(value) > api.MaxValueSize {
				return failf("put: value is %d bytes; want 1..%d", len(value), api.MaxValueSize)
			}

			ctx, cancel := context.WithTimeout(cctx.Context, cctx.Duration("timeout"))
			defer cancel()
			addr := cctx.String("api")
			c, err := api.Dial(ctx, addr)
			if err != nil {
				return failf("put: %v", err)
			}
			defer c.Close()
			if err := c.Put(ctx, api.Put{TTL: ttl, Replication: repl, Key: k, Value: value}); err != nil {
				return failf("put to %s: %v", addr, err)
			}
			got, err := c.Get(ctx, k)
			if errors.Is(err, api.ErrNotFound) {
				return failf("put to %s: not confirmed: a GET of the key right after the PUT answered FAILURE", addr)
			}
			if err != nil {
				return failf("put to %s: confirming GET: %v", addr, err)
			}
			res := putResult{Key: hex.EncodeToString(k[:]), Size: len(value), TTL: ttl, Replication: repl, Newer: !bytes.Equal(got, value)}
			out := cctx.App.Writer
			if cctx.Bool("json") {
				return writeJSON(out, res)
			}
			note := ""
			if res.Newer {
				note = "; a newer value written by another client is already stored"
			}
			fmt.Fprintf(out, "stored %d bytes under key %s%s\n", res.Size, res.Key, note)
			return nil
		},
	}
}
