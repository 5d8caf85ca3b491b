// Package testlog gives tests a log destination that the code under test
// may write from its goroutines while the test reads it, and a logger on
// it: what was logged is checked (no secret in it, a line that must be
// there) and printed when a test fails.
package testlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Grep returns the lines written so far that hold s.
func (l *Buffer) Grep(s string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// New returns a debug-level text logger writing to a new Buffer, which
// is printed (its last 20,000 bytes) if the test fails.
func New(t testing.TB) (*slog.Logger, *Buffer) {
	t.Helper()
	var b Buffer
	t.Cleanup(func() {
		if t.Failed() {
			s := b.String()
			if len(s) > 20000 {
				s = "…" + s[len(s)-20000:]
			}
			t.Logf("log:\n%s", s)
		}
	})
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}
