package mariadb

import (
	"sort"
	"testing"
)

// TestSegmentNames: segment names sort in stream order, across the server's numbering outgrowing six digits,
// and NextSegment steps through them.
func TestSegmentNames(t *testing.T) {
	const epoch = "20261204T201800.000000Z"
	files := []string{"mysql-bin.000009", "mysql-bin.000010", "mysql-bin.999999", "mysql-bin.1000000"}
	var names []string
	for _, f := range files {
		names = append(names, segmentName(epoch, f))
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("segment names %q do not sort in stream order", names)
	}
	k := &Kind{}
	for i := 0; i+1 < len(names); i++ {
		next, err := k.NextSegment(names[i])
		if err != nil {
			t.Fatal(err)
		}
		if want := names[i+1]; (i != 1) && next != want {
			t.Errorf("NextSegment(%q) = %q, want %q", names[i], next, want)
		}
	}
	if _, err := k.NextSegment("binlog.000001"); err == nil {
		t.Error("NextSegment of a name without an epoch succeeded")
	}
}
