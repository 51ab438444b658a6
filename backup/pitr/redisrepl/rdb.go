package redisrepl

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// receiveRDB writes the RDB that follows +FULLRESYNC to path: after any "\n" keepalives, either "$<len>\r\n" and
// that many bytes, or (diskless, capa eof) "$EOF:<40-byte mark>\r\n" and the bytes up to that mark. It returns
// the RDB's size.
func receiveRDB(r *bufio.Reader, path string) (int64, error) {
	var head string
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("read the RDB: %w", err)
		}
		if b == '\n' {
			continue // the master is still saving
		}
		if b != '$' {
			return 0, fmt.Errorf("read the RDB: unexpected byte %q before it", b)
		}
		l, err := line(r)
		if err != nil {
			return 0, fmt.Errorf("read the RDB: %w", err)
		}
		head = l
		break
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	cw := &countWriter{w: bufio.NewWriterSize(f, 256<<10)}
	if mark, ok := strings.CutPrefix(head, "EOF:"); ok {
		if len(mark) != 40 {
			f.Close() //nolint:errcheck
			return 0, fmt.Errorf("read the RDB: bad end mark %q", mark)
		}
		err = copyUntil(cw, r, []byte(mark))
	} else {
		var n int64
		if n, err = strconv.ParseInt(head, 10, 64); err != nil || n < 0 {
			f.Close() //nolint:errcheck
			return 0, fmt.Errorf("read the RDB: bad length %q", head)
		}
		_, err = io.CopyN(cw, r, n)
	}
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("read the RDB: %w", err)
	}
	return cw.n, nil
}

// copyUntil copies r to w up to mark, consuming the mark and nothing after it (the command stream follows).
func copyUntil(w io.Writer, r *bufio.Reader, mark []byte) error {
	var tail []byte // the last bytes seen, shorter than mark: the mark may start in them
	for {
		if _, err := r.Peek(1); err != nil {
			return err //nolint:wrapcheck
		}
		data, _ := r.Peek(r.Buffered())
		joined := append(append([]byte(nil), tail...), data...)
		if i := bytes.Index(joined, mark); i >= 0 {
			if _, err := w.Write(joined[:i]); err != nil {
				return err //nolint:wrapcheck
			}
			_, err := r.Discard(i + len(mark) - len(tail))
			return err //nolint:wrapcheck
		}
		keep := min(len(mark)-1, len(joined))
		if _, err := w.Write(joined[:len(joined)-keep]); err != nil {
			return err //nolint:wrapcheck
		}
		tail = append(tail[:0], joined[len(joined)-keep:]...)
		if _, err := r.Discard(len(data)); err != nil {
			return err //nolint:wrapcheck
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err //nolint:wrapcheck
}
