package main

import (
	"context"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

// TestCatalogSaverUploadsOnlyChanges: a catalog that did not change is not uploaded again; a change is, and
// LoadCatalog returns it.
func TestCatalogSaverUploadsOnlyChanges(t *testing.T) {
	ctx := context.Background()
	m := bootMainOn(t, t.TempDir(), "", map[string]string{"REWIND_REPO_PASSWORD": "pw"})
	defer m.Close()
	m.CatalogSaver.Close(ctx) //nolint:errcheck // stop the ticker; Save is called by hand below
	if err := m.CatalogSaver.Save(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := m.CatalogSaver.LastSaved()
	time.Sleep(5 * time.Millisecond)
	if err := m.CatalogSaver.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.CatalogSaver.LastSaved(); !again.Equal(first) {
		t.Fatalf("an unchanged catalog was uploaded again (%v, then %v)", first, again)
	}
	if _, err := m.Catalog.CreateUser(ctx, "new@example.com", "a long enough password", db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if err := m.CatalogSaver.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if next, _ := m.CatalogSaver.LastSaved(); !next.After(first) {
		t.Fatal("a changed catalog was not uploaded")
	}
	files, _, err := m.Repo.LoadCatalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files[db.CatalogFileName]) == 0 || len(files[db.SecretFileName]) == 0 {
		t.Fatalf("catalog copy holds %d files, want rewind.db and secret.key", len(files))
	}
}
