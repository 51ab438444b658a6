package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/kopia/kopia/fs"
)

// SumsFile is the name of the checksum listing at the root of every backup: one line per regular file of
// every service, in the format of `sha256sum` (`<hex>  <service>/<path>`), sorted by path. After restoring a
// snapshot with the stock kopia tool, `sha256sum -c SHA256SUMS` verifies it. A service's checksum in
// rewind.json is the SHA-256 of its own lines of this file.
const SumsFile = "SHA256SUMS"

// fileSum is the checksum of one regular file.
type fileSum struct {
	sum  string // lowercase hex
	size int64
}

// Sums maps the slash-separated path of each regular file (relative to the backup root, so starting with the
// service name) to its SHA-256 in lowercase hex.
type Sums map[string]string

// ServiceChecksum is the SHA-256 of the lines of service's files in the sums listing.
func (s Sums) ServiceChecksum(service string) string {
	h := sha256.New()
	s.write(h, service+"/")
	return hex.EncodeToString(h.Sum(nil))
}

// Marshal returns the listing in sha256sum format, sorted by path.
func (s Sums) Marshal() []byte {
	var b bytes.Buffer
	s.write(&b, "")
	return b.Bytes()
}

func (s Sums) write(w io.Writer, prefix string) {
	paths := make([]string, 0, len(s))
	for p := range s {
		if strings.HasPrefix(p, prefix) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		// sha256sum escapes names holding a backslash or a newline and marks the line with a leading backslash.
		if strings.ContainsAny(p, "\\\n\r") {
			esc := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r").Replace(p)
			fmt.Fprintf(w, "\\%s  %s\n", s[p], esc)
			continue
		}
		fmt.Fprintf(w, "%s  %s\n", s[p], p)
	}
}

// ParseSums parses a listing written by Sums.Marshal.
func ParseSums(data []byte) (Sums, error) {
	s := Sums{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		escaped := strings.HasPrefix(line, "\\")
		if escaped {
			line = line[1:]
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || !isLowerHex(sum) || name == "" {
			return nil, fmt.Errorf("parse %s line %d: malformed", SumsFile, n)
		}
		if escaped {
			var err error
			if name, err = unescapeSumName(name); err != nil {
				return nil, fmt.Errorf("parse %s line %d: %w", SumsFile, n, err)
			}
		}
		s[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse %s: %w", SumsFile, err)
	}
	return s, nil
}

func unescapeSumName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("dangling escape")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hashRecorder collects the SHA-256 of every file read to its end through a tree wrapped by wrapHashing, and
// the first read error (a failed capture). It also counts bytes into a Progress.
type hashRecorder struct {
	p Progress

	mu      sync.Mutex
	sums    map[string]fileSum // path relative to the backup root
	failure error
}

func newHashRecorder(p Progress) *hashRecorder {
	return &hashRecorder{p: p, sums: map[string]fileSum{}}
}

func (r *hashRecorder) done(rel string, s fileSum) {
	r.mu.Lock()
	r.sums[rel] = s
	r.mu.Unlock()
}

func (r *hashRecorder) fail(rel string, err error) {
	r.mu.Lock()
	if r.failure == nil {
		r.failure = fmt.Errorf("read %s: %w", rel, err)
	}
	r.mu.Unlock()
}

func (r *hashRecorder) firstFailure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failure
}

func (r *hashRecorder) lookup(rel string) (fileSum, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sums[rel]
	return s, ok
}

// wrapHashing returns d with every regular and streaming file hashed as it is read; rel is d's path relative
// to the backup root.
func wrapHashing(d fs.Directory, rel string, r *hashRecorder) fs.Directory {
	return &hashDir{Directory: d, rel: rel, rec: r}
}

type hashDir struct {
	fs.Directory
	rel string
	rec *hashRecorder
}

func (d *hashDir) wrap(e fs.Entry) fs.Entry {
	rel := path.Join(d.rel, e.Name())
	switch e := e.(type) {
	case fs.Directory:
		return &hashDir{Directory: e, rel: rel, rec: d.rec}
	case fs.File:
		return &hashFile{File: e, rel: rel, rec: d.rec}
	case fs.StreamingFile:
		return &hashStream{StreamingFile: e, rel: rel, rec: d.rec}
	default:
		return e
	}
}

func (d *hashDir) Child(ctx context.Context, name string) (fs.Entry, error) {
	e, err := d.Directory.Child(ctx, name)
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	return d.wrap(e), nil
}

func (d *hashDir) Iterate(ctx context.Context) (fs.DirectoryIterator, error) {
	it, err := d.Directory.Iterate(ctx)
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	return &hashIter{it: it, d: d}, nil
}

type hashIter struct {
	it fs.DirectoryIterator
	d  *hashDir
}

func (i *hashIter) Next(ctx context.Context) (fs.Entry, error) {
	e, err := i.it.Next(ctx)
	if e == nil || err != nil {
		return e, err //nolint:wrapcheck
	}
	return i.d.wrap(e), nil
}

func (i *hashIter) Close() { i.it.Close() }

type hashFile struct {
	fs.File
	rel string
	rec *hashRecorder
}

func (f *hashFile) Open(ctx context.Context) (fs.Reader, error) {
	r, err := f.File.Open(ctx)
	if err != nil {
		f.rec.fail(f.rel, err)
		return nil, err //nolint:wrapcheck
	}
	return &hashFileReader{Reader: r, hr: newHashingReader(f.rel, f.rec)}, nil
}

type hashFileReader struct {
	fs.Reader
	hr *hashingReader
}

func (r *hashFileReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.hr.observe(p[:n], err)
	return n, err //nolint:wrapcheck
}

func (r *hashFileReader) Seek(offset int64, whence int) (int64, error) {
	if !(offset == 0 && whence == io.SeekStart && r.hr.size == 0) {
		r.hr.invalid = true // a partial read (kopia's parallel parts): the sum comes from the repository later
	}
	return r.Reader.Seek(offset, whence) //nolint:wrapcheck
}

type hashStream struct {
	fs.StreamingFile
	rel string
	rec *hashRecorder
}

func (f *hashStream) GetReader(ctx context.Context) (io.ReadCloser, error) {
	r, err := f.StreamingFile.GetReader(ctx)
	if err != nil {
		f.rec.fail(f.rel, err)
		return nil, err //nolint:wrapcheck
	}
	return &hashStreamReader{ReadCloser: r, hr: newHashingReader(f.rel, f.rec)}, nil
}

type hashStreamReader struct {
	io.ReadCloser
	hr *hashingReader
}

func (r *hashStreamReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.hr.observe(p[:n], err)
	return n, err //nolint:wrapcheck
}

// hashingReader is the state shared by both reader kinds; kopia reads each reader from one goroutine.
type hashingReader struct {
	rel     string
	rec     *hashRecorder
	h       hash.Hash
	size    int64
	invalid bool
	ended   bool
}

func newHashingReader(rel string, rec *hashRecorder) *hashingReader {
	return &hashingReader{rel: rel, rec: rec, h: sha256.New()}
}

func (h *hashingReader) observe(p []byte, err error) {
	if h.ended {
		return
	}
	if len(p) > 0 {
		h.h.Write(p)
		h.size += int64(len(p))
		h.rec.p.Add(int64(len(p)))
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		h.ended = true
		if !h.invalid {
			h.rec.done(h.rel, fileSum{sum: hex.EncodeToString(h.h.Sum(nil)), size: h.size})
		}
	default:
		h.ended = true
		h.rec.fail(h.rel, err)
	}
}

// hashReader returns the SHA-256 of everything r yields.
func hashReader(r io.Reader) (fileSum, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fileSum{}, err //nolint:wrapcheck
	}
	return fileSum{sum: hex.EncodeToString(h.Sum(nil)), size: n}, nil
}
