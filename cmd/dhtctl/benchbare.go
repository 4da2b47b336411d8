package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/durachord/durachord/api"
)

// The bare server is a benchmark fixture: the client protocol's framing in
// front of a map under a lock, with nothing of a node (no ring, no disk, no
// per-key ordering, no limits beyond an idle deadline). What `dhtctl bench`
// measures against it is the most any server of this protocol can do on the
// machine, the yardstick of a node's rate. One connection is served one
// request at a time, so read-your-writes holds on it trivially.

// bareIdleTimeout closes a connection that sends nothing for this long.
const bareIdleTimeout = 5 * time.Minute

func benchBareServerCommand() *cli.Command {
	return &cli.Command{
		Name:   "bare-server",
		Usage:  "serve the client protocol from a map in memory (a benchmark yardstick)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "`HOST:PORT` to listen on"},
			&cli.DurationFlag{Name: "duration", Usage: "stop by itself after this long (0: run until SIGINT or SIGTERM)"},
		},
		Action: func(cctx *cli.Context) error {
			ctx, stop := untilSignalOrDuration(cctx)
			defer stop()
			l, err := net.Listen("tcp", cctx.String("listen"))
			if err != nil {
				return failf("bench bare-server: %v", err)
			}
			line, _ := json.Marshal(map[string]string{"api": l.Addr().String()})
			fmt.Fprintln(cctx.App.Writer, string(line))
			if err := serveBare(ctx, l); err != nil {
				return failf("bench bare-server: %v", err)
			}
			return nil
		},
	}
}

// serveBare serves l until ctx ends, then closes every connection and
// returns once each is done.
func serveBare(ctx context.Context, l net.Listener) error {
	var (
		mu      sync.RWMutex // guards records
		records = make(map[[api.KeySize]byte][]byte)
		conns   sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer conns.Wait()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		done := context.AfterFunc(ctx, func() { nc.Close() })
		conns.Go(func() {
			defer done()
			defer nc.Close()
			br, bw := bufio.NewReaderSize(nc, 64<<10), bufio.NewWriterSize(nc, 64<<10)
			var out []byte
			for {
				_ = nc.SetReadDeadline(time.Now().Add(bareIdleTimeout))
				m, err := api.ReadMessage(br)
				if err != nil {
					return // end of stream, idle, closed or a protocol violation
				}
				switch m := m.(type) {
				case api.Put:
					mu.Lock()
					records[m.Key] = m.Value
					mu.Unlock()
				case api.Get:
					mu.RLock()
					v, ok := records[m.Key]
					mu.RUnlock()
					if ok {
						out = api.Success{Key: m.Key, Value: v}.AppendTo(out[:0])
					} else {
						out = api.Failure(m).AppendTo(out[:0])
					}
					if _, err := bw.Write(out); err != nil {
						return
					}
				default:
					return // a node-to-client type
				}
				if br.Buffered() == 0 && bw.Flush() != nil { // pipelined requests leave together
					return
				}
			}
		})
	}
}
