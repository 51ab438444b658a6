package backup

import "io"

// ProgressReader returns r, adding the bytes read to p.
func ProgressReader(r io.Reader, p Progress) io.Reader { return progressReader{r: r, p: p} }

// ProgressReadCloser is ProgressReader for an io.ReadCloser; Close closes r.
func ProgressReadCloser(r io.ReadCloser, p Progress) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{progressReader{r: r, p: p}, r}
}

// ProgressWriter returns w, adding the bytes written to p.
func ProgressWriter(w io.Writer, p Progress) io.Writer { return progressWriter{w: w, p: p} }

type progressReader struct {
	r io.Reader
	p Progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		pr.p.Add(int64(n))
	}
	return n, err //nolint:wrapcheck
}

type progressWriter struct {
	w io.Writer
	p Progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	if n > 0 {
		pw.p.Add(int64(n))
	}
	return n, err //nolint:wrapcheck
}
