package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/durachord/durachord/crypto"
)

// The JSON-RPC 2.0 messages of this package, encoded by hand around the
// caller's params or the handler's result (encoded once, by encoding/json,
// straight into the frame buffer) and decoded by a small scanner that finds
// the members of the envelope without decoding params or result: those are
// handed on as sub-slices of the frame body and decoded once, by whoever
// knows their type.

// request is a JSON-RPC 2.0 request as read from a frame.
type request struct {
	// id is the raw JSON id (a number, a string or null), nil for a
	// notification.
	id     []byte
	method string
	// params is the raw JSON params (an object or an array), nil if absent.
	params []byte
	// timeoutMS is meta.timeout_ms, 0 if absent.
	timeoutMS int64
	// scalarParams is meta.scalar_params: params is a one-element array
	// around the caller's args, which are not an object or an array.
	scalarParams bool
	// to and as are meta.to and meta.as, 0 if absent: the index of the
	// position the call is for, and of the caller's position it is made
	// from (crypto.PositionID).
	to, as int
}

// args returns the caller's args: params, or the element inside it when
// the args were a scalar.
func (r request) args() []byte {
	if !r.scalarParams || len(r.params) < 2 || r.params[0] != '[' {
		return r.params
	}
	inner := r.params[1 : len(r.params)-1]
	return inner[skipSpace(inner, 0):len(bytes.TrimRight(inner, " \t\r\n"))]
}

// response is a JSON-RPC 2.0 response as read from a frame.
type response struct {
	// id is the id of the request answered; responses to our requests carry
	// our numeric ids. hasID is false for "id":null (an error about a request
	// whose id could not be read).
	id    uint64
	hasID bool
	// result is the raw JSON result when err is nil.
	result []byte
	err    *wireError
}

// wireError is a JSON-RPC 2.0 error object.
type wireError struct {
	Code    int64
	Message string
}

func (e *wireError) Error() string { return fmt.Sprintf("remote error %d: %s", e.Code, e.Message) }

// message is any frame body after the hello: a request or a response.
type message struct {
	isRequest bool
	req       request
	resp      response
}

// errSyntax marks a body that is not a JSON-RPC 2.0 message.
var errSyntax = errors.New("not a JSON-RPC 2.0 message")

// appendRequestHead appends a request's members up to its params:
// {"jsonrpc":"2.0","id":N,"method":"M". The caller appends params, meta and
// the closing brace.
func appendRequestHead(dst []byte, id uint64, method string) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":`...)
	return appendString(dst, method)
}

// reqMeta is what a request's meta member says.
type reqMeta struct {
	timeoutMS    int64
	scalarParams bool
	to, as       int
}

// appendRequestTail appends the meta member (if there is something to
// say) and closes the request.
func appendRequestTail(dst []byte, m reqMeta) []byte {
	if m.timeoutMS <= 0 && !m.scalarParams && m.to <= 0 && m.as <= 0 {
		return append(dst, '}')
	}
	dst = append(dst, `,"meta":{`...)
	sep := false
	member := func(name string) {
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, name...)
	}
	if m.timeoutMS > 0 {
		member(`"timeout_ms":`)
		dst = strconv.AppendInt(dst, m.timeoutMS, 10)
	}
	if m.scalarParams {
		member(`"scalar_params":true`)
	}
	if m.to > 0 {
		member(`"to":`)
		dst = strconv.AppendInt(dst, int64(m.to), 10)
	}
	if m.as > 0 {
		member(`"as":`)
		dst = strconv.AppendInt(dst, int64(m.as), 10)
	}
	return append(dst, "}}"...)
}

// appendResponseHead appends a response's members up to its result or
// error value: {"jsonrpc":"2.0","id":ID,"result": (or "error":). id is the
// raw id of the request; nil stands for null.
func appendResponseHead(dst []byte, id []byte, isError bool) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, id...)
	}
	if isError {
		return append(dst, `,"error":`...)
	}
	return append(dst, `,"result":`...)
}

// appendErrorResponse appends a whole error response.
func appendErrorResponse(dst []byte, id []byte, code int64, message string) []byte {
	dst = appendResponseHead(dst, id, true)
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, code, 10)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, message)
	return append(dst, "}}"...)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigit = "0123456789abcdef"

// parseMessage reads a frame body as a JSON-RPC 2.0 request or response.
// The slices in the result alias body. It checks what JSON-RPC 2.0 asks of
// the envelope ("jsonrpc":"2.0", a string method, a number or string id,
// exactly one of result and error, an error's integer code and string
// message) and that params, result and error data are well-formed JSON;
// their contents are the business of whoever decodes them.
//
// names, if not nil, interns method names: a connection sees the same few
// over and over.
func parseMessage(body []byte, names names) (message, error) {
	// Each member's raw value, nil if absent (a value is never empty).
	var (
		m                                 message
		version, method, id, params, meta []byte
		result, errObj                    []byte
	)
	err := eachMember(body, func(key, val []byte) error {
		var slot *[]byte
		switch string(key) {
		case "jsonrpc":
			slot = &version
		case "method":
			slot = &method
		case "id":
			slot = &id
		case "params":
			slot = &params
		case "meta":
			slot = &meta
		case "result":
			slot = &result
		case "error":
			slot = &errObj
		default:
			return nil
		}
		if *slot != nil {
			return fmt.Errorf("%w: member %q twice", errSyntax, key)
		}
		*slot = val
		return nil
	})
	hasID, hasResult, hasError := id != nil, result != nil, errObj != nil
	if err != nil {
		return m, err
	}
	if string(version) != `"2.0"` {
		return m, fmt.Errorf("%w: jsonrpc member is not \"2.0\"", errSyntax)
	}
	if hasID && id[0] != '"' && id[0] != '-' && (id[0] < '0' || id[0] > '9') && string(id) != "null" {
		return m, fmt.Errorf("%w: id %.40s is not a number or a string", errSyntax, id)
	}
	if method != nil {
		if hasResult || hasError {
			return m, fmt.Errorf("%w: a request with a result or error", errSyntax)
		}
		m.isRequest = true
		if m.req.method, err = names.parseString(method); err != nil {
			return m, fmt.Errorf("%w: method: %v", errSyntax, err)
		}
		if hasID {
			m.req.id = id
		}
		if params != nil {
			if params[0] != '{' && params[0] != '[' {
				return m, fmt.Errorf("%w: params is neither an object nor an array", errSyntax)
			}
			m.req.params = params
		}
		if meta != nil {
			rm, err := parseMeta(meta)
			if err != nil {
				return m, err
			}
			m.req.timeoutMS, m.req.scalarParams, m.req.to, m.req.as = rm.timeoutMS, rm.scalarParams, rm.to, rm.as
		}
		return m, nil
	}
	if hasResult == hasError {
		return m, fmt.Errorf("%w: a response needs exactly one of result and error", errSyntax)
	}
	if !hasID {
		return m, fmt.Errorf("%w: a response without id", errSyntax)
	}
	if string(id) != "null" {
		if m.resp.id, err = strconv.ParseUint(string(id), 10, 64); err != nil {
			return m, fmt.Errorf("%w: response id %.40s is not one of ours", errSyntax, id)
		}
		m.resp.hasID = true
	}
	if hasResult {
		m.resp.result = result
		return m, nil
	}
	m.resp.err, err = parseError(errObj)
	return m, err
}

// parseMeta reads a request's meta member: {"timeout_ms":N,
// "scalar_params":true,"to":I,"as":J}, each optional, other members
// ignored; to and as are position indexes, below crypto.PositionCandidates.
func parseMeta(meta []byte) (m reqMeta, err error) {
	err = eachMember(meta, func(key, val []byte) error {
		switch k := string(key); k {
		case "timeout_ms":
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil {
				return fmt.Errorf("%w: meta.timeout_ms %.40s: not an integer", errSyntax, val)
			}
			m.timeoutMS = n
		case "scalar_params":
			m.scalarParams = string(val) == "true"
		case "to", "as":
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 || n >= crypto.PositionCandidates {
				return fmt.Errorf("%w: meta.%s %.40s: not a position index in [0, %d)", errSyntax, k, val, crypto.PositionCandidates)
			}
			if k == "to" {
				m.to = n
			} else {
				m.as = n
			}
		}
		return nil
	})
	return m, err
}

// parseError reads a JSON-RPC error object: an integer code and a string
// message (data, if any, is ignored).
func parseError(obj []byte) (*wireError, error) {
	var (
		e                   wireError
		hasCode, hasMessage bool
	)
	err := eachMember(obj, func(key, val []byte) error {
		var err error
		switch string(key) {
		case "code":
			hasCode = true
			if e.Code, err = strconv.ParseInt(string(val), 10, 64); err != nil {
				return fmt.Errorf("%w: error code %.40s is not an integer", errSyntax, val)
			}
		case "message":
			hasMessage = true
			if e.Message, err = parseString(val); err != nil {
				return fmt.Errorf("%w: error message: %v", errSyntax, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !hasCode || !hasMessage {
		return nil, fmt.Errorf("%w: an error object needs a code and a message", errSyntax)
	}
	return &e, nil
}

// names interns strings, up to maxNames of them.
type names map[string]string

const maxNames = 256

// parseString is the package's parseString, returning the interned string
// when it has no escapes.
func (n names) parseString(s []byte) (string, error) {
	if len(s) >= 2 && s[0] == '"' {
		inner := s[1 : len(s)-1]
		if v, ok := n[string(inner)]; ok {
			return v, nil
		}
		v, err := parseString(s)
		if err == nil && n != nil && len(n) < maxNames && len(v) == len(inner) && v == string(inner) {
			n[v] = v
		}
		return v, err
	}
	return parseString(s)
}

// parseString returns the JSON string token s (quotes included) as a Go
// string.
func parseString(s []byte) (string, error) {
	if len(s) < 2 || s[0] != '"' {
		return "", errors.New("not a string")
	}
	inner := s[1 : len(s)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), nil
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return "", err
	}
	return out, nil
}

// maxDepth bounds the nesting of arrays and objects a body may have, as
// encoding/json does.
const maxDepth = 10000

// eachMember calls fn with the key (unescaped only if it has no escapes:
// keys we look for have none) and the raw value of each member of the JSON
// object b, which must be the whole of b but for white space. Values are
// checked to be well-formed JSON.
func eachMember(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: not a JSON object", errSyntax)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipSpace(b, i+1) != len(b) {
			return fmt.Errorf("%w: data after the object", errSyntax)
		}
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return fmt.Errorf("%w: expected a member name at offset %d", errSyntax, i)
		}
		end, err := skipValue(b, i, 0)
		if err != nil {
			return err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return fmt.Errorf("%w: expected ':' at offset %d", errSyntax, i)
		}
		i = skipSpace(b, i+1)
		end, err = skipValue(b, i, 1)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:end]); err != nil {
			return err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return fmt.Errorf("%w: unterminated object", errSyntax)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			if skipSpace(b, i+1) != len(b) {
				return fmt.Errorf("%w: data after the object", errSyntax)
			}
			return nil
		default:
			return fmt.Errorf("%w: expected ',' or '}' at offset %d", errSyntax, i)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the offset just past the JSON value starting at b[i],
// checking that it is well-formed (RFC 8259; strings may hold invalid
// UTF-8, as encoding/json accepts).
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: value expected at the end", errSyntax)
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		return skipComposite(b, i, depth)
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return 0, fmt.Errorf("%w: unexpected %q at offset %d", errSyntax, b[i], i)
}

func skipComposite(b []byte, i, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, fmt.Errorf("%w: nested deeper than %d", errSyntax, maxDepth)
	}
	open := b[i]
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return i + 1, nil
	}
	for {
		var err error
		if open == '{' {
			if i >= len(b) || b[i] != '"' {
				return 0, fmt.Errorf("%w: expected a member name at offset %d", errSyntax, i)
			}
			if i, err = skipString(b, i); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, fmt.Errorf("%w: expected ':' at offset %d", errSyntax, i)
			}
			i = skipSpace(b, i+1)
		}
		if i, err = skipValue(b, i, depth+1); err != nil {
			return 0, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, fmt.Errorf("%w: unterminated %c", errSyntax, open)
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closing:
			return i + 1, nil
		default:
			return 0, fmt.Errorf("%w: unexpected %q at offset %d", errSyntax, b[i], i)
		}
	}
}

func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c < 0x20:
			return 0, fmt.Errorf("%w: control character in a string at offset %d", errSyntax, i)
		case c == '\\':
			i++
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, fmt.Errorf("%w: short \\u escape", errSyntax)
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, fmt.Errorf("%w: bad \\u escape at offset %d", errSyntax, i)
					}
				}
				i += 4
			default:
				return 0, fmt.Errorf("%w: bad escape at offset %d", errSyntax, i)
			}
		}
	}
	return 0, fmt.Errorf("%w: unterminated string", errSyntax)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func skipNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0, fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, fmt.Errorf("%w: bad number at offset %d", errSyntax, start)
		}
	}
	return i, nil
}

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, fmt.Errorf("%w: bad literal at offset %d", errSyntax, i)
	}
	return i + len(lit), nil
}
