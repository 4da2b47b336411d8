package main

import (
	"bytes"
	"io"
	"sync"
)

// oneLinePerEvent writes each log event on one line. hclog writes an event in
// one Write call, but prints a value that holds line breaks (a joined error)
// on indented continuation lines; collectors that split on newlines would take
// those for separate events. The breaks inside an event become " | ".
type oneLinePerEvent struct {
	mu  sync.Mutex // guards w and buf
	w   io.Writer
	buf []byte
}

func (o *oneLinePerEvent) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	body := bytes.TrimRight(p, "\n")
	if !bytes.Contains(body, []byte("\n")) {
		return o.w.Write(p)
	}
	o.buf = o.buf[:0]
	for i, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if i > 0 {
			line = bytes.TrimSpace(bytes.TrimPrefix(line, []byte("|")))
			o.buf = append(o.buf, " | "...)
		}
		o.buf = append(o.buf, line...)
	}
	o.buf = append(o.buf, '\n')
	if _, err := o.w.Write(o.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
