package db

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := LoadSecrets(dir)
	if err != nil {
		t.Fatalf("LoadSecrets() = %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, SecretFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Fatalf("secret.key mode = %v, want %v", got, want)
	}
	if len(s1.CatalogKey) != KeySize || len(s1.SessionKey) != 64 || bytes.Equal(s1.CatalogKey, s1.SessionKey[:32]) {
		t.Fatalf("LoadSecrets() = keys of %d/%d bytes, want 32/64 distinct", len(s1.CatalogKey), len(s1.SessionKey))
	}
	s2, err := LoadSecrets(dir)
	if err != nil || !bytes.Equal(s1.CatalogKey, s2.CatalogKey) || !bytes.Equal(s1.SessionKey, s2.SessionKey) {
		t.Fatalf("second LoadSecrets() = %v, want the same keys", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".secret.key.tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}

	os.Chmod(filepath.Join(dir, SecretFileName), 0o644)
	if _, err := LoadSecrets(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadSecrets(0644) = %v, want a chmod hint", err)
	}
	os.Chmod(filepath.Join(dir, SecretFileName), 0o600)
	os.WriteFile(filepath.Join(dir, SecretFileName), []byte(`{"version": 99}`), 0o600)
	if _, err := LoadSecrets(dir); err == nil || !strings.Contains(err.Error(), "upgrade rewind") {
		t.Fatalf("LoadSecrets(version 99) = %v, want an upgrade hint", err)
	}
	os.WriteFile(filepath.Join(dir, SecretFileName), []byte("{}"), 0o600)
	if _, err := LoadSecrets(dir); err == nil {
		t.Fatal("LoadSecrets(empty keys) = nil, want an error")
	}
}

func TestLoadSecrets_ConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := LoadSecrets(dir)
			errs[i] = err
			if err == nil {
				keys[i] = s.CatalogKey
			}
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("LoadSecrets() #%d = %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("LoadSecrets() #%d returned another key than #0", i)
		}
	}
}

func TestOpenCatalog_NoDataDir(t *testing.T) {
	if _, _, err := OpenDataDir(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("OpenDataDir(\"\") = %v, want a hint to --data", err)
	}
}
