package backup_test

import (
	"bytes"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/backup"
)

func validManifest() *backup.Manifest {
	return &backup.Manifest{
		Format: 1, ID: "0123456789abcdef0123", Environment: "main", Kind: backup.KindManual,
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), FinishedAt: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
		Pause: 1500 * time.Microsecond, Commit: "deadbeef",
		Services: []backup.ServiceManifest{{
			Name: "db", Type: "postgresql", Version: "PostgreSQL 15.19", Bytes: 10, Files: 1,
			SHA256: strings.Repeat("ab", 32),
		}},
	}
}

func FuzzParseManifest(f *testing.F) {
	good, err := validManifest().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"id":"0123456789abcdef0123","environment":"main","kind":"manual","services":[{"name":"../x","type":"files","sha256":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"format":1,"id":"0123456789ABCDEF0123"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := backup.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, backup.ErrInvalidManifest) {
				t.Fatalf("error %v does not wrap ErrInvalidManifest", err)
			}
			return
		}
		// Whatever parses is safe to use as folder names and round-trips.
		for _, s := range m.Services {
			if err := backup.CheckEntryName(s.Name); err != nil {
				t.Fatalf("accepted service name %q: %v", s.Name, err)
			}
		}
		if !backup.ValidID(m.ID) {
			t.Fatalf("accepted id %q", m.ID)
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		m2, err := backup.ParseManifest(again)
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if m2.ID != m.ID || len(m2.Services) != len(m.Services) {
			t.Fatalf("round trip changed the manifest")
		}
	})
}

func TestManifestRejects(t *testing.T) {
	for name, mut := range map[string]func(*backup.Manifest){
		"bad id":          func(m *backup.Manifest) { m.ID = "xyz" },
		"bad kind":        func(m *backup.Manifest) { m.Kind = "weekly" },
		"bad env":         func(m *backup.Manifest) { m.Environment = "Main Env" },
		"service escape":  func(m *backup.Manifest) { m.Services[0].Name = ".." },
		"service slash":   func(m *backup.Manifest) { m.Services[0].Name = "a/b" },
		"duplicate":       func(m *backup.Manifest) { m.Services = append(m.Services, m.Services[0]) },
		"no checksum":     func(m *backup.Manifest) { m.Services[0].SHA256 = "" },
		"future format":   func(m *backup.Manifest) { m.Format = 99 },
		"negative bytes":  func(m *backup.Manifest) { m.Services[0].Bytes = -1 },
		"bad restored id": func(m *backup.Manifest) { m.RestoredFrom = "nope" },
	} {
		m := validManifest()
		mut(m)
		if _, err := m.Marshal(); !errors.Is(err, backup.ErrInvalidManifest) {
			t.Errorf("%s: Marshal error = %v, want ErrInvalidManifest", name, err)
		}
	}
}

func FuzzCheckEntryName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "", "a/b", "/", "..a", "a\x00b", "日本語", "new\nline", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if backup.CheckEntryName(name) != nil {
			return
		}
		// An accepted name joined to a directory stays one level inside it.
		p := path.Join("/root/dir", name)
		if path.Dir(p) != "/root/dir" || path.Base(p) != name {
			t.Fatalf("accepted %q escapes: %q", name, p)
		}
	})
}

func FuzzParseSums(f *testing.F) {
	s := backup.Sums{"db/dump": strings.Repeat("a", 64), "files/new\nline": strings.Repeat("b", 64), `files/back\slash`: strings.Repeat("c", 64)}
	f.Add(s.Marshal())
	f.Add([]byte("zz  x\n"))
	f.Add([]byte("\\" + strings.Repeat("0", 64) + "  a\\q\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := backup.ParseSums(data)
		if err != nil {
			return
		}
		again, err := backup.ParseSums(sums.Marshal())
		if err != nil {
			t.Fatalf("reparse of marshalled sums: %v", err)
		}
		if !bytes.Equal(again.Marshal(), sums.Marshal()) {
			t.Fatalf("sums round trip differs")
		}
	})
}
