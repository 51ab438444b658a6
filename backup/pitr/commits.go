package pitr

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// MarshalCommits is the commits file shipped with each segment: one RFC 3339 time per line, oldest first.
func MarshalCommits(ts []time.Time) []byte {
	var b bytes.Buffer
	for _, t := range ts {
		b.WriteString(t.UTC().Format(time.RFC3339Nano))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseCommits reads a commits file written by MarshalCommits.
func ParseCommits(data []byte) ([]time.Time, error) {
	var out []time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, line)
		if err != nil {
			return nil, fmt.Errorf("commits file: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}
