package redisrepl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// A segment is one file of the timestamped command stream, named by a zero-padded sequence number (segmentName).
// It starts with a header line, "rewind-redis-segment 1 <replid> <offset> <db>", the replication id, the offset
// before its first command and the database the stream had selected there; each record follows as a line "<receive time, Unix ns> <offset after it> <bytes>"
// and then those bytes: the commands as the master sent them (a MULTI … EXEC block is one record, stamped with
// the time its EXEC arrived), and a newline.

const segmentMagic = "rewind-redis-segment 1"

// segmentDigits is the width of segment names: sequence numbers that sort as text.
const segmentDigits = 20

func segmentName(n uint64) string { return fmt.Sprintf("%0*d", segmentDigits, n) }

func segmentNumber(name string) (uint64, error) {
	if len(name) != segmentDigits {
		return 0, fmt.Errorf("%q is not a Redis stream segment name", name)
	}
	n, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a Redis stream segment name", name)
	}
	return n, nil
}

// firstSegment is the number of the first segment after a new base: the base's time in microseconds, so it
// sorts after every segment before it and never continues an earlier run (the planner would read that as one
// unbroken stream across what the full resynchronization skipped).
func firstSegment(t time.Time, after uint64) uint64 {
	return max(uint64(t.UnixMicro()), after+2)
}

type segmentHeader struct {
	replid string
	start  int64
	db     string // the database selected at start
}

func (h segmentHeader) line() string {
	return fmt.Sprintf("%s %s %d %s\n", segmentMagic, h.replid, h.start, h.db)
}

type record struct {
	at  time.Time
	end int64 // replication offset after the record
	raw []byte
}

func (r record) encode() []byte {
	head := fmt.Sprintf("%d %d %d\n", r.at.UnixNano(), r.end, len(r.raw))
	out := make([]byte, 0, len(head)+len(r.raw)+1)
	out = append(out, head...)
	out = append(out, r.raw...)
	return append(out, '\n')
}

// readSegment reads the segment at path, calling fn for each complete record in order (fn may stop the reading
// with errStop). It returns the header and the length of the file up to its last complete record: a file cut
// inside a record (a crash while it was written) ends there.
func readSegment(path string, fn func(segmentHeader, record) error) (segmentHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return segmentHeader{}, 0, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close() //nolint:errcheck
	r := bufio.NewReaderSize(f, 256<<10)
	first, err := r.ReadString('\n')
	if err != nil {
		return segmentHeader{}, 0, fmt.Errorf("segment %s: no header", path)
	}
	var h segmentHeader
	fields := strings.Fields(strings.TrimPrefix(first, segmentMagic))
	if !strings.HasPrefix(first, segmentMagic) || len(fields) != 3 {
		return h, 0, fmt.Errorf("segment %s: bad header %q", path, truncate(first, 60))
	}
	h.replid, h.db = fields[0], fields[2]
	if h.start, err = strconv.ParseInt(fields[1], 10, 64); err != nil {
		return h, 0, fmt.Errorf("segment %s: bad header %q", path, truncate(first, 60))
	}
	valid := int64(len(first))
	for {
		head, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return h, valid, nil
		}
		if err != nil {
			return h, valid, fmt.Errorf("read segment %s: %w", path, err)
		}
		var ns, end int64
		var size int
		if _, err := fmt.Sscanf(head, "%d %d %d\n", &ns, &end, &size); err != nil || size < 0 {
			return h, valid, fmt.Errorf("segment %s: bad record at byte %d", path, valid)
		}
		raw := make([]byte, size+1)
		if _, err := io.ReadFull(r, raw); err != nil {
			return h, valid, nil // cut inside the record
		}
		if raw[size] != '\n' {
			return h, valid, fmt.Errorf("segment %s: bad record at byte %d", path, valid)
		}
		valid += int64(len(head)) + int64(size) + 1
		if err := fn(h, record{at: time.Unix(0, ns).UTC(), end: end, raw: raw[:size]}); err != nil {
			if errors.Is(err, errStop) {
				return h, valid, nil
			}
			return h, valid, err
		}
	}
}

var errStop = errors.New("stop")
