package jobs

import (
	"strings"
	"testing"
)

// TestCheckSpace refuses a drill whose copy cannot fit on the temporary directory's filesystem, naming what it
// needs and what to do, and lets a small one through.
func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	if err := checkSpace(dir, 1<<20); err != nil {
		t.Fatalf("checkSpace of 1 MiB = %v, want nil", err)
	}
	err := checkSpace(dir, 1<<60)
	if err == nil || !strings.Contains(err.Error(), "TMPDIR") || !strings.Contains(err.Error(), "1.0 EiB") {
		t.Fatalf("checkSpace of 1 EiB = %v, want a refusal naming the size and TMPDIR", err)
	}
}
