package cluster

import (
	"bytes"
	"io"
	"sync"
)

// LineWriter returns a writer that calls line with each complete line
// written to it (without its newline), one call at a time: a node's output
// goes to a test log or a prefixed progress stream whole lines at a time
// however the process chunked its writes. An unfinished last line is kept
// until its newline comes.
func LineWriter(line func(string)) io.Writer { return &lineWriter{line: line} }

type lineWriter struct {
	mu   sync.Mutex
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
