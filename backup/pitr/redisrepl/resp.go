package redisrepl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The replication protocol is RESP over plain TCP: what follows is the little of it a replica needs (commands
// out, simple replies and arrays of bulk strings in), with the bytes of every command kept, since they are
// what the master's replication offset counts and what a replay sends again.

// command encodes args as a RESP array of bulk strings.
func command(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// serverError is an error reply of the server ("-ERR ...", "-NOPERM ...").
type serverError string

func (e serverError) Error() string { return string(e) }

// line reads one CRLF-terminated line, without its CRLF.
func line(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil {
		return "", err //nolint:wrapcheck // callers say what they were reading
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// reply reads one reply: a string for simple strings, integers and bulk strings (nil for a null bulk string),
// []any for arrays, serverError for error replies.
func reply(r *bufio.Reader) (any, error) {
	l, err := line(r)
	if err != nil {
		return nil, err
	}
	if l == "" {
		return nil, errors.New("empty reply line")
	}
	switch l[0] {
	case '+', ':':
		return l[1:], nil
	case '-':
		return serverError(l[1:]), nil
	case '$':
		n, err := strconv.Atoi(l[1:])
		if err != nil {
			return nil, fmt.Errorf("bad bulk length %q", l)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err //nolint:wrapcheck
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(l[1:])
		if err != nil {
			return nil, fmt.Errorf("bad array length %q", l)
		}
		out := make([]any, 0, max(n, 0))
		for i := 0; i < n; i++ {
			v, err := reply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", l)
}

// streamCommand is one command of the replication stream: its arguments and its bytes as received.
type streamCommand struct {
	args []string
	raw  []byte
}

// name is the command's name in upper case.
func (c streamCommand) name() string {
	if len(c.args) == 0 {
		return ""
	}
	return strings.ToUpper(c.args[0])
}

// readCommand reads one command of the replication stream (a RESP array of bulk strings).
func readCommand(r *bufio.Reader) (streamCommand, error) {
	var c streamCommand
	head, err := r.ReadSlice('\n')
	if err != nil {
		return c, err //nolint:wrapcheck
	}
	c.raw = append(c.raw, head...)
	h := strings.TrimRight(string(head), "\r\n")
	if len(h) < 2 || h[0] != '*' {
		return c, fmt.Errorf("the replication stream holds %q where a command was expected", truncate(h, 40))
	}
	n, err := strconv.Atoi(h[1:])
	if err != nil || n < 0 {
		return c, fmt.Errorf("bad command length %q", h)
	}
	for i := 0; i < n; i++ {
		bh, err := r.ReadSlice('\n')
		if err != nil {
			return c, err //nolint:wrapcheck
		}
		c.raw = append(c.raw, bh...)
		b := strings.TrimRight(string(bh), "\r\n")
		if len(b) < 2 || b[0] != '$' {
			return c, fmt.Errorf("bad argument %q", truncate(b, 40))
		}
		size, err := strconv.Atoi(b[1:])
		if err != nil || size < 0 {
			return c, fmt.Errorf("bad argument length %q", b)
		}
		start := len(c.raw)
		c.raw = append(c.raw, make([]byte, size+2)...)
		if _, err := io.ReadFull(r, c.raw[start:]); err != nil {
			return c, err //nolint:wrapcheck
		}
		c.args = append(c.args, string(c.raw[start:start+size]))
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
