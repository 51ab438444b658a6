package mysql

import (
	"io"
	"strings"
	"testing"
)

func splitAll(t testing.TB, in string) ([]statement, error) {
	sp := newSplitter(strings.NewReader(in))
	var out []statement
	for {
		st, err := sp.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, st)
	}
}

func TestSplit(t *testing.T) {
	in := "-- a comment; not a statement\n" +
		sectionMarker + "tables\n" +
		"CREATE TABLE `a;b` (x TEXT);\n" +
		"INSERT INTO `a;b` VALUES ('it''s; \\' -- x', \"d;q\", X'00ff'), ('/* ; */');\n" +
		"# hash comment ;\n" +
		"SELECT 1 /* inline ; comment */ ;\n" +
		sectionMarker + "routines\n" +
		"SET SESSION sql_mode = 'A,B';\n" +
		"DELIMITER ;;\n" +
		"CREATE PROCEDURE p() BEGIN SELECT ';'; SELECT 2; END ;;\n" +
		"DELIMITER ;\n" +
		"SELECT 3;\n"
	got, err := splitAll(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []statement{
		{"tables", "CREATE TABLE `a;b` (x TEXT)"},
		{"tables", "INSERT INTO `a;b` VALUES ('it''s; \\' -- x', \"d;q\", X'00ff'), ('/* ; */')"},
		{"tables", "SELECT 1 /* inline ; comment */"},
		{"routines", "SET SESSION sql_mode = 'A,B'"},
		{"routines", "CREATE PROCEDURE p() BEGIN SELECT ';'; SELECT 2; END"},
		{"routines", "SELECT 3"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d statements %q, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d = %q, want %q", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"SELECT 'unterminated;\n", "SELECT 1", "/* open ;", "DELIMITER\n"} {
		if _, err := splitAll(t, bad); err == nil {
			t.Errorf("split(%q) succeeded", bad)
		}
	}
}

// FuzzSplit: the splitter never panics or loops on any input, and every statement it returns is non-empty.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"SELECT 1;",
		sectionMarker + "tables\nINSERT INTO t VALUES ('a\\'b', \"c\"\"d\", `e``f`);",
		"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END ;;\nDELIMITER ;\n",
		"/* c */ -- d\n# e\nSELECT 2;",
		"DELIMITER $$\nSELECT 1$$\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, _ := splitAll(t, in)
		for _, st := range got {
			if strings.TrimSpace(st.SQL) == "" {
				t.Fatalf("empty statement from %q", in)
			}
		}
	})
}
