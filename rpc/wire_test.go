package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// body returns the body of an outgoing frame buffer.
func body(f *frameBuf) []byte { return f.b[frameHead:] }

// compact returns raw compacted, or nil if raw is not JSON.
func compact(raw []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return nil
	}
	return buf.Bytes()
}

// decodedString is s after a trip through encoding/json (invalid UTF-8
// becomes U+FFFD).
func decodedString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	// Numbers compare as their text: a number beyond float64 (1e700) is
	// valid JSON, which the wire carries as it is.
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		if d.More() {
			return nil, errors.New("more than one value")
		}
		return v, nil
	}
	va, erra := decode(a)
	vb, errb := decode(b)
	return erra == nil && errb == nil && reflect.DeepEqual(va, vb)
}

// FuzzMessage: every message this package encodes (request, response with
// result, response with error, hello in both forms) decodes to the value
// encoded, and is a JSON-RPC 2.0 object (the hello: a JSON object); any
// body the decoder accepts is valid JSON.
func FuzzMessage(f *testing.F) {
	f.Add(uint64(1), "dht.get", []byte(`{"key":"00ff"}`), int64(1500), int64(-32601), "no such method")
	f.Add(uint64(0), "", []byte(`[1,2,{"a":null}]`), int64(0), int64(0), "")
	f.Add(uint64(1<<64-1), "chord.\"odd\"\n\u2028\xff", []byte(`"scalar"`), int64(-5), int64(1<<62), "\x00\x1f\"\\")
	f.Add(uint64(7), "m", []byte(`12.5e3`), int64(1), int64(1006), "x")
	f.Add(uint64(7), "m", []byte(`not json`), int64(1), int64(1006), "x")
	f.Fuzz(func(t *testing.T, id uint64, method string, params []byte, timeoutMS int64, code int64, msg string) {
		var bufs bufPool
		raw := compact(params)

		// Request.
		req := bufs.outgoing()
		var args any
		if raw != nil {
			args = json.RawMessage(raw)
		}
		if err := req.appendRequest(id, method, args, timeoutMS); err != nil {
			t.Fatalf("appendRequest(%d, %q, %s, %d) = %v", id, method, raw, timeoutMS, err)
		}
		checkJSONRPC(t, body(req), true)
		m, err := parseMessage(body(req), nil)
		if err != nil || !m.isRequest {
			t.Fatalf("parseMessage(%s) = %+v, %v; want a request", body(req), m, err)
		}
		wantArgs := raw
		if string(m.req.id) != strconv.FormatUint(id, 10) || m.req.method != decodedString(t, method) ||
			!bytes.Equal(m.req.args(), wantArgs) || m.req.timeoutMS != max(0, timeoutMS) {
			t.Fatalf("request %s decoded as id %s, method %q, args %s, timeout %d; want %d, %q, %s, %d",
				body(req), m.req.id, m.req.method, m.req.args(), m.req.timeoutMS, id, method, wantArgs, max(0, timeoutMS))
		}

		// Response with a result, to the id as the request carried it.
		resp := bufs.outgoing()
		var result any = json.RawMessage(raw)
		if raw == nil {
			result = msg // any JSON value will do
		}
		if err := resp.appendResult(m.req.id, result); err != nil {
			t.Fatalf("appendResult(%s) = %v", raw, err)
		}
		checkJSONRPC(t, body(resp), false)
		want, _ := json.Marshal(result)
		m, err = parseMessage(body(resp), nil)
		if err != nil || m.isRequest || !m.resp.hasID || m.resp.id != id || m.resp.err != nil || !sameJSON(m.resp.result, want) {
			t.Fatalf("parseMessage(%s) = %+v, %v; want the result %s for id %d", body(resp), m, err, want, id)
		}

		// Response with an error.
		eresp := bufs.outgoing()
		eresp.b = appendErrorResponse(eresp.b, []byte(strconv.FormatUint(id, 10)), code, msg)
		checkJSONRPC(t, body(eresp), false)
		m, err = parseMessage(body(eresp), nil)
		if err != nil || m.resp.id != id || m.resp.err == nil || m.resp.err.Code != code || m.resp.err.Message != decodedString(t, msg) {
			t.Fatalf("parseMessage(%s) = %+v, %v; want error %d %q", body(eresp), m, err, code, msg)
		}

		// Hello, both forms.
		for _, h := range []hello{
			{Protocol: method, Version: int(code)},
			{Protocol: protocolName, Version: ProtocolVersion, Error: &helloError{Code: int(code), Message: msg}},
		} {
			hf := bufs.outgoing()
			if err := hf.appendJSON(h); err != nil {
				t.Fatal(err)
			}
			var got hello
			if err := json.Unmarshal(body(hf), &got); err != nil {
				t.Fatalf("hello %s: %v", body(hf), err)
			}
			h.Protocol = decodedString(t, h.Protocol)
			if h.Error != nil {
				h.Error.Message = decodedString(t, h.Error.Message)
			}
			if !reflect.DeepEqual(got, h) {
				t.Fatalf("hello %s decoded as %+v; want %+v", body(hf), got, h)
			}
		}

		// Arbitrary bodies: the decoder accepts only valid JSON.
		for _, b := range [][]byte{params, []byte(method), []byte(msg)} {
			if _, err := parseMessage(b, nil); err == nil && !json.Valid(b) {
				t.Fatalf("parseMessage(%q) accepted a body that is not JSON", b)
			}
		}
	})
}

// checkJSONRPC fails t unless b is a JSON-RPC 2.0 request (isRequest) or
// response object as the specification defines them, checked with
// encoding/json independently of this package's decoder.
func checkJSONRPC(t *testing.T, b []byte, isRequest bool) {
	t.Helper()
	if err := validJSONRPC(b, isRequest); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

func validJSONRPC(b []byte, isRequest bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return fmt.Errorf("data after the object")
	}
	if string(obj["jsonrpc"]) != `"2.0"` {
		return fmt.Errorf(`"jsonrpc" is %s; want "2.0"`, obj["jsonrpc"])
	}
	kind := func(raw json.RawMessage) string {
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&v) != nil {
			return "invalid"
		}
		switch v.(type) {
		case nil:
			return "null"
		case string:
			return "string"
		case json.Number:
			return "number"
		case map[string]any:
			return "object"
		case []any:
			return "array"
		}
		return "other"
	}
	id, hasID := obj["id"]
	if hasID && kind(id) != "number" && kind(id) != "string" && kind(id) != "null" {
		return fmt.Errorf(`"id" is %s; want a number, a string or null`, id)
	}
	if isRequest {
		for k := range obj {
			switch k {
			case "jsonrpc", "method", "id", "params", "meta":
			default:
				return fmt.Errorf("request member %q", k)
			}
		}
		if kind(obj["method"]) != "string" {
			return fmt.Errorf(`"method" is %s; want a string`, obj["method"])
		}
		if !hasID || kind(id) == "null" {
			return fmt.Errorf(`a request expecting a reply has "id" %s`, id)
		}
		if p, ok := obj["params"]; ok && kind(p) != "object" && kind(p) != "array" {
			return fmt.Errorf(`"params" is %s; want an object or an array`, p)
		}
		return nil
	}
	for k := range obj {
		switch k {
		case "jsonrpc", "id", "result", "error":
		default:
			return fmt.Errorf("response member %q", k)
		}
	}
	if !hasID {
		return fmt.Errorf(`a response without "id"`)
	}
	res, hasResult := obj["result"]
	e, hasError := obj["error"]
	if hasResult == hasError {
		return fmt.Errorf(`a response needs exactly one of "result" and "error"`)
	}
	if hasResult && kind(res) == "invalid" {
		return fmt.Errorf(`"result" is not JSON`)
	}
	if hasError {
		var eo map[string]json.RawMessage
		if err := json.Unmarshal(e, &eo); err != nil {
			return fmt.Errorf(`"error" is not an object: %v`, err)
		}
		if _, err := strconv.ParseInt(string(eo["code"]), 10, 64); err != nil {
			return fmt.Errorf(`"error.code" is %s; want an integer`, eo["code"])
		}
		if kind(eo["message"]) != "string" {
			return fmt.Errorf(`"error.message" is %s; want a string`, eo["message"])
		}
	}
	return nil
}

func TestParseMessageRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body string
	}{
		{"not-object", `[1]`},
		{"no-version", `{"id":1,"method":"m"}`},
		{"version-1", `{"jsonrpc":"1.0","id":1,"method":"m"}`},
		{"version-number", `{"jsonrpc":2.0,"id":1,"method":"m"}`},
		{"method-number", `{"jsonrpc":"2.0","id":1,"method":1}`},
		{"id-object", `{"jsonrpc":"2.0","id":{},"method":"m"}`},
		{"params-scalar", `{"jsonrpc":"2.0","id":1,"method":"m","params":1}`},
		{"params-bad-json", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":}}`},
		{"duplicate-id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`},
		{"result-and-error", `{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}`},
		{"neither", `{"jsonrpc":"2.0","id":1}`},
		{"response-no-id", `{"jsonrpc":"2.0","result":1}`},
		{"error-code-float", `{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}`},
		{"error-no-message", `{"jsonrpc":"2.0","id":1,"error":{"code":1}}`},
		{"trailing-data", `{"jsonrpc":"2.0","id":1,"result":1}x`},
		{"unterminated-string", `{"jsonrpc":"2.0","id":1,"result":"abc}`},
		{"control-in-string", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\x01\"}"},
		{"bad-number", `{"jsonrpc":"2.0","id":1,"result":01}`},
		{"deep", `{"jsonrpc":"2.0","id":1,"result":` + string(bytes.Repeat([]byte("["), maxDepth+1)) + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := parseMessage([]byte(tc.body), nil); err == nil {
				t.Errorf("parseMessage(%s) = %+v, nil; want an error", tc.body, m)
			}
		})
	}
}

// FuzzParseMessage: the decoder never panics on a hostile body and accepts
// only valid JSON.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"dht.get","params":{"key":"ab"},"meta":{"timeout_ms":5}}`,
		`{"jsonrpc":"2.0","id":"x","method":"m","params":["a",1,true,null],"meta":{"scalar_params":true}}`,
		`{"jsonrpc":"2.0","id":2,"method":"m","meta":{"to":4,"as":255,"timeout_ms":9}}`,
		`{"jsonrpc":"2.0","id":3,"result":{"a":[1.5e-3,"\u00e9\n"]}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad","data":{}}}`,
		` { "jsonrpc" : "2.0" , "id" : 4 , "result" : null } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b, names{})
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("parseMessage(%q) = %+v, nil; the body is not JSON", b, m)
		}
		if m.isRequest && m.req.params != nil && m.req.params[0] != '{' && m.req.params[0] != '[' {
			t.Fatalf("parseMessage(%q): params %s is not structured", b, m.req.params)
		}
	})
}

// TestFramesAreJSONRPC captures the frames a real Client and a real Server
// send, for calls with and without args (structured, scalar, nil pointer)
// and deadline, and answers with a result, no result and errors, and checks
// that each body is a JSON-RPC 2.0 object as the specification defines it.
func TestFramesAreJSONRPC(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)

	t.Run("client-requests", func(t *testing.T) {
		srvID := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
		bodies := make(chan []byte, 16)
		addr := fakeServer(t, srvID, func(c *tls.Conn) {
			br := bufio.NewReader(c)
			if _, err := readFrame(br, DefaultMaxFrameSize, keys); err != nil {
				return
			}
			writeJSONFrame(t, c, keys, hello{Protocol: protocolName, Version: ProtocolVersion})
			for {
				b, err := readFrame(br, DefaultMaxFrameSize, keys)
				if err != nil {
					return
				}
				bodies <- b
				var req struct {
					ID json.RawMessage `json:"id"`
				}
				_ = json.Unmarshal(b, &req)
				var out bufPool
				f := out.outgoing()
				_ = f.appendResult(req.ID, "ok")
				if _, err := c.Write(appendFrame(nil, keys, body(f))); err != nil {
					return
				}
			}
		})
		cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
		to := chord.NodeInfo{ID: srvID.ID, Addr: addr}
		var nilArgs *getArgs
		for _, tc := range []struct {
			name string
			ctx  context.Context
			args any
		}{
			{"struct-deadline", ctxT(t), getArgs{Key: chord.ID{1}}},
			{"struct-no-deadline", context.Background(), getArgs{Key: chord.ID{2}}},
			{"array", ctxT(t), []int{1, 2}},
			{"no-args", ctxT(t), nil},
			{"nil-pointer", ctxT(t), nilArgs},
			{"scalar", ctxT(t), 42},
			{"string", ctxT(t), "text"},
		} {
			if err := cli.client.Call(tc.ctx, to, "m."+tc.name, tc.args, nil); err != nil {
				t.Fatalf("Call(%s) = %v", tc.name, err)
			}
			checkJSONRPC(t, <-bodies, true)
		}
	})

	t.Run("server-responses", func(t *testing.T) {
		h := chord.HandlerFunc(func(_ context.Context, from chord.ID, method string, params json.RawMessage) (any, error) {
			switch method {
			case "result":
				return getReply{Key: from, Value: benchValue}, nil
			case "nil":
				return nil, nil
			case "notfound":
				return nil, fmt.Errorf("looking: %w", chord.ErrNotFound)
			case "unencodable":
				return func() {}, nil
			case "panic":
				panic("boom")
			}
			return nil, chord.ErrUnknownMethod
		})
		srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, DefaultServerConfig())
		me := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
		c := dialRaw(t, srv.info.Addr, me.ClientConfig("127.0.0.1", srv.info.ID))
		br := bufio.NewReader(c)
		writeJSONFrame(t, c, keys, hello{Protocol: protocolName, Version: ProtocolVersion})
		if _, err := readFrame(br, DefaultMaxFrameSize, keys); err != nil {
			t.Fatalf("read hello: %v", err)
		}
		methods := []string{"result", "nil", "notfound", "unencodable", "panic", "no-such-method"}
		for i, method := range methods {
			var bufs bufPool
			f := bufs.outgoing()
			if err := f.appendRequest(uint64(i+1), method, getArgs{}, 5000); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(appendFrame(nil, keys, body(f))); err != nil {
				t.Fatal(err)
			}
		}
		for range methods {
			b, err := readFrame(br, DefaultMaxFrameSize, keys)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			checkJSONRPC(t, b, false)
		}
	})
}

// countingConn counts the writes made to it.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestQueuedFramesLeaveTogether: frames queued on a connection while its
// writer is busy leave in one write (one TLS record on a TLS connection),
// and each arrives intact.
func TestQueuedFramesLeaveTogether(t *testing.T) {
	keys := cryptotest.NewKeyring(t)
	near, far := net.Pipe()
	t.Cleanup(func() { _ = far.Close() })
	conn := &countingConn{Conn: near}
	var bufs bufPool
	w := newWire(conn, keys, &bufs, DefaultMaxFrameSize, 10*time.Second, func(string, error) {})
	const n = 20
	for i := range n {
		f := bufs.outgoing()
		if err := f.appendRequest(uint64(i), "dht.get", getArgs{Key: chord.ID{byte(i)}}, 100); err != nil {
			t.Fatal(err)
		}
		if err := w.send(ctxT(t), f); err != nil {
			t.Fatalf("send %d = %v", i, err)
		}
	}
	go w.writeLoop()
	t.Cleanup(func() { w.close(); <-w.wrote })
	br := bufio.NewReader(far)
	for i := range n {
		b, err := readFrame(br, DefaultMaxFrameSize, keys)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		m, err := parseMessage(b, nil)
		if err != nil || string(m.req.id) != strconv.Itoa(i) {
			t.Fatalf("frame %d = %s (%v); want the request with id %d", i, b, err, i)
		}
	}
	if got := conn.writes.Load(); got != 1 {
		t.Errorf("%d queued frames left in %d writes; want 1", n, got)
	}
}

// TestMetaPositions: the positions a request names travel in meta and come
// back as sent, with any other meta; an index outside [0, 256) is refused.
func TestMetaPositions(t *testing.T) {
	for _, m := range []reqMeta{{}, {to: 1}, {as: 255}, {timeoutMS: 7, to: 3, as: 9}, {timeoutMS: 1, as: 2}} {
		for _, args := range []any{nil, 5, map[string]int{"a": 1}} {
			var f frameBuf
			if err := f.appendRequestMeta(1, "m", args, m); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(f.b) {
				t.Fatalf("%+v, %v: %s is not JSON", m, args, f.b)
			}
			got, err := parseMessage(f.b, nil)
			if err != nil {
				t.Fatalf("parseMessage(%s) = %v", f.b, err)
			}
			if r := got.req; r.to != m.to || r.as != m.as || r.timeoutMS != m.timeoutMS {
				t.Errorf("%s: to %d as %d timeout %d; want %+v", f.b, r.to, r.as, r.timeoutMS, m)
			}
		}
	}
	for _, meta := range []string{`{"to":256}`, `{"as":-1}`, `{"to":"1"}`, `{"as":1.5}`} {
		body := `{"jsonrpc":"2.0","id":1,"method":"m","meta":` + meta + `}`
		if _, err := parseMessage([]byte(body), nil); err == nil {
			t.Errorf("parseMessage(%s) took it", body)
		}
	}
}
