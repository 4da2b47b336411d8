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

// writeHello writes h as one frame.
func (s *stream) writeHello(h hello) error {
	return s.WriteObject(h)
}

// readHello reads the peer's hello frame.
func (s *stream) readHello() (hello, error) {
	var h hello
	body, err := s.readBody()
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(body, &h); err != nil {
		err = fmt.Errorf("%w: hello: %v", ErrBadFrame, err)
		s.reject(ReasonFrame, err)
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

// callMeta is the "meta" member of a request.
type callMeta struct {
	// TimeoutMS is the time the caller still waits for the response.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}
