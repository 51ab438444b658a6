package backup

import (
	"bytes"
	"sync"
)

// TailSize is how many of the last bytes a Tail keeps.
const TailSize = 4096

// Tail keeps the last TailSize bytes written to it: the end of a tool's output, for its error message. Several
// goroutines may write to it (a command's stdout and stderr).
type Tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > TailSize {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-TailSize:]...)
	}
	return len(p), nil
}

// String is what was kept, without surrounding space.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
