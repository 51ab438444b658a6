package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// statement is one SQL statement of a dump file, with the section it belongs to.
type statement struct {
	Section string // from the last "-- rewind-section: NAME" comment; "" before the first
	SQL     string // without its delimiter
}

// sectionMarker starts a section of a dump file.
const sectionMarker = "-- rewind-section: "

// maxStatement bounds one statement (a batch of rows is at most about 1 MiB; a single huge value may be
// bigger, up to the server's own max_allowed_packet limit of 1 GiB).
const maxStatement = 1 << 30

// splitter reads a dump file statement by statement the way the mysql command-line client does: statements end
// with the current delimiter outside quotes and comments, and "DELIMITER x" lines change the delimiter.
type splitter struct {
	r       *bufio.Reader
	delim   string
	section string
	line    int
}

func newSplitter(r io.Reader) *splitter {
	return &splitter{r: bufio.NewReaderSize(r, 256<<10), delim: ";", line: 1}
}

var errSyntax = errors.New("malformed dump file")

// next returns the next statement, or io.EOF after the last one.
func (s *splitter) next() (statement, error) {
	var buf bytes.Buffer
	atStart := true // only whitespace and comments so far
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			if rest := strings.TrimSpace(buf.String()); rest != "" {
				return statement{}, fmt.Errorf("%w: statement without delimiter %q at line %d", errSyntax, s.delim, s.line)
			}
			return statement{}, io.EOF
		}
		if err != nil {
			return statement{}, err
		}
		if buf.Len() > maxStatement {
			return statement{}, fmt.Errorf("%w: statement longer than %d bytes at line %d", errSyntax, maxStatement, s.line)
		}
		if c == '\n' {
			s.line++
		}
		if atStart {
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\n':
				continue
			case c == '#' || (c == '-' && s.peekIs("- ")) || (c == '-' && s.peekIs("-\n")):
				line, err := s.readLine()
				if err != nil && err != io.EOF {
					return statement{}, err
				}
				full := string(c) + line
				if name, ok := strings.CutPrefix(strings.TrimRight(full, "\r"), sectionMarker); ok {
					s.section = strings.TrimSpace(name)
				}
				continue
			case c == 'D' || c == 'd':
				if s.peekFold("ELIMITER ") {
					line, err := s.readLine()
					if err != nil && err != io.EOF {
						return statement{}, err
					}
					d := strings.TrimSpace(line[len("ELIMITER "):])
					if d == "" || strings.ContainsAny(d, "'\"`\\") {
						return statement{}, fmt.Errorf("%w: bad DELIMITER at line %d", errSyntax, s.line-1)
					}
					s.delim = d
					continue
				}
			}
			atStart = false
		}
		switch c {
		case '\'', '"', '`':
			buf.WriteByte(c)
			if err := s.quoted(&buf, c); err != nil {
				return statement{}, err
			}
			continue
		case '/':
			if s.peekIs("*") {
				buf.WriteByte(c)
				if err := s.blockComment(&buf); err != nil {
					return statement{}, err
				}
				continue
			}
		case '#':
			line, err := s.readLine()
			if err != nil && err != io.EOF {
				return statement{}, err
			}
			buf.WriteString("#" + line + "\n")
			continue
		case '-':
			if s.peekIs("- ") || s.peekIs("-\n") || s.peekIs("-\t") {
				line, err := s.readLine()
				if err != nil && err != io.EOF {
					return statement{}, err
				}
				buf.WriteString("-" + line + "\n")
				continue
			}
		}
		buf.WriteByte(c)
		if c == s.delim[len(s.delim)-1] && bytes.HasSuffix(buf.Bytes(), []byte(s.delim)) {
			sql := strings.TrimSpace(string(buf.Bytes()[:buf.Len()-len(s.delim)]))
			if sql == "" {
				buf.Reset()
				atStart = true
				continue
			}
			return statement{Section: s.section, SQL: sql}, nil
		}
	}
}

// quoted copies a quoted string or identifier up to its closing quote.
func (s *splitter) quoted(buf *bytes.Buffer, q byte) error {
	start := s.line
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: unterminated %c quote from line %d", errSyntax, q, start)
			}
			return err
		}
		if buf.Len() > maxStatement {
			return fmt.Errorf("%w: statement longer than %d bytes at line %d", errSyntax, maxStatement, s.line)
		}
		if c == '\n' {
			s.line++
		}
		buf.WriteByte(c)
		switch {
		case c == '\\' && q != '`':
			n, err := s.r.ReadByte()
			if err != nil {
				return fmt.Errorf("%w: unterminated %c quote from line %d", errSyntax, q, start)
			}
			if n == '\n' {
				s.line++
			}
			buf.WriteByte(n)
		case c == q:
			if s.peekIs(string(q)) { // doubled quote
				n, _ := s.r.ReadByte()
				buf.WriteByte(n)
				continue
			}
			return nil
		}
	}
}

// blockComment copies a /* ... */ comment (the '/' is already in buf, the '*' is next).
func (s *splitter) blockComment(buf *bytes.Buffer) error {
	start := s.line
	star, _ := s.r.ReadByte()
	buf.WriteByte(star)
	prev := byte(0)
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: unterminated comment from line %d", errSyntax, start)
			}
			return err
		}
		if buf.Len() > maxStatement {
			return fmt.Errorf("%w: statement longer than %d bytes at line %d", errSyntax, maxStatement, s.line)
		}
		if c == '\n' {
			s.line++
		}
		buf.WriteByte(c)
		if prev == '*' && c == '/' {
			return nil
		}
		prev = c
	}
}

func (s *splitter) peekIs(p string) bool {
	b, err := s.r.Peek(len(p))
	return err == nil && string(b) == p
}

func (s *splitter) peekFold(p string) bool {
	b, err := s.r.Peek(len(p))
	return err == nil && strings.EqualFold(string(b), p)
}

// readLine reads up to and including the next newline, returning the line without it.
func (s *splitter) readLine() (string, error) {
	line, err := s.r.ReadString('\n')
	if strings.HasSuffix(line, "\n") {
		s.line++
		line = line[:len(line)-1]
	}
	return line, err
}
