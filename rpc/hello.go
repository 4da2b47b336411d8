package rpc

import (
	"encoding/json"
	"fmt"

	"github.com/durachord/durachord/chord"
)

// ProtocolVersion is the version of the frame and call protocol this package
// speaks; peers must speak the same.
const ProtocolVersion = 1

const protocolName = "durachord-rpc"

// hello is the first frame in each direction.
type hello struct {
	Protocol string      `json:"protocol"`
	Version  int         `json:"version"`
	Error    *helloError `json:"error,omitempty"`
}

type helloError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeHello writes h as one frame, before the writer runs.
func (w *wire) writeHello(h hello) error {
	f := w.bufs.outgoing()
	if err := f.appendJSON(h); err != nil {
		w.bufs.put(f)
		return err
	}
	return w.writeSync(f)
}

// readHello reads the peer's hello frame.
func (w *wire) readHello() (hello, error) {
	var h hello
	f, body, err := w.readBody()
	if err != nil {
		return h, err
	}
	defer w.bufs.put(f)
	if err := json.Unmarshal(body, &h); err != nil {
		err = fmt.Errorf("%w: hello: %v", ErrBadFrame, err)
		w.reject(ReasonFrame, err)
		return h, err
	}
	return h, nil
}

// checkHello returns nil if the peer speaks our protocol and version, else an
// error wrapping chord.ErrProtocol.
func checkHello(h hello) error {
	if h.Protocol != protocolName {
		return fmt.Errorf("%w: peer speaks %q, want %q", chord.ErrProtocol, h.Protocol, protocolName)
	}
	if h.Version != ProtocolVersion {
		return fmt.Errorf("%w: peer speaks version %d, want %d", chord.ErrProtocol, h.Version, ProtocolVersion)
	}
	return nil
}
