package pgwal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// segmentSize is the WAL segment size Rewind follows: PostgreSQL's default. Check refuses servers built or
// initialized with another (initdb --wal-segsize).
const segmentSize = 16 << 20

// segmentsPerXLogID is how many segments make one "xlogid" (the middle 8 hex digits of a WAL file name).
const segmentsPerXLogID = 0x100000000 / segmentSize

// ValidWALName reports whether name is a WAL segment file name: 24 upper-case hex digits.
func ValidWALName(name string) bool {
	if len(name) != 24 {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// walNumber splits a segment name into its timeline and segment number.
func walNumber(name string) (tli uint32, seg uint64, err error) {
	if !ValidWALName(name) {
		return 0, 0, fmt.Errorf("%q is not a WAL segment name", name)
	}
	t, _ := strconv.ParseUint(name[0:8], 16, 32)
	hi, _ := strconv.ParseUint(name[8:16], 16, 32)
	lo, _ := strconv.ParseUint(name[16:24], 16, 32)
	return uint32(t), hi*segmentsPerXLogID + lo, nil
}

func walName(tli uint32, seg uint64) string {
	return fmt.Sprintf("%08X%08X%08X", tli, seg/segmentsPerXLogID, seg%segmentsPerXLogID)
}

// NextWAL returns the name of the segment after name on the same timeline.
func NextWAL(name string) (string, error) {
	tli, seg, err := walNumber(name)
	if err != nil {
		return "", err
	}
	return walName(tli, seg+1), nil
}

// WALForLSN returns the name of the segment holding lsn ("16/B374D848") on timeline tli.
func WALForLSN(tli int, lsn string) (string, error) {
	v, err := parseLSN(lsn)
	if err != nil {
		return "", err
	}
	return walName(uint32(tli), v/segmentSize), nil
}

func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not an LSN", s)
	}
	return h<<32 | l, nil
}

// commitRE matches a commit record in pg_waldump's output (TZ=UTC):
// "... lsn: 0/0301A8C8, prev 0/0301A890, desc: COMMIT 2026-12-03 13:50:00.123456 UTC".
var commitRE = regexp.MustCompile(`lsn: ([0-9A-F]+/[0-9A-F]+), .*desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC`)

// Commits are the commit records of one WAL segment: their times in WAL order and the position of the last.
type Commits struct {
	Times   []time.Time
	LastLSN string
}

// readCommits lists the commit records of the WAL file at path with pg_waldump. A file that ends inside a
// record (the segment being written, or a record continued in the next segment) is read up to there.
func readCommits(ctx context.Context, waldump, path string) (Commits, error) {
	cmd := exec.CommandContext(ctx, waldump, "--rmgr=Transaction", path)
	cmd.Env = []string{"TZ=UTC", "LC_ALL=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	msg := stderr.String()
	if err != nil && !strings.Contains(msg, "error in WAL record") && !strings.Contains(msg, "could not find file") {
		return Commits{}, fmt.Errorf("pg_waldump %s: %v: %s", path, err, strings.TrimSpace(msg))
	}
	var c Commits
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := commitRE.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", string(m[2]), time.UTC)
		if err != nil {
			continue
		}
		c.Times = append(c.Times, t)
		c.LastLSN = string(m[1])
	}
	return c, sc.Err()
}
