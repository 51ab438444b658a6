package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// Behind a reverse proxy the links Rewind hands out (the setup link, the links in notifications) use the
// address users reach it at, not the listen address.
func TestPublicURL(t *testing.T) {
	var console strings.Builder
	m := NewMain()
	m.DataDir, m.Addr, m.PublicURL = t.TempDir(), "127.0.0.1:0", "https://rewind.example.com/"
	m.Console, m.Logger = &console, slog.New(slog.DiscardHandler)
	m.Getenv = func(string) string { return "" }
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.Contains(console.String(), "    https://rewind.example.com/setup?token=") {
		t.Errorf("the setup link does not use the public URL:\n%s", console.String())
	}
	if got, want := m.Notifier.BaseURL, "https://rewind.example.com"; got != want {
		t.Errorf("notification links start with %q, want %q", got, want)
	}
}

func TestPublicURLRefusesNonURL(t *testing.T) {
	m := NewMain()
	m.DataDir, m.Addr, m.PublicURL = t.TempDir(), "127.0.0.1:0", "rewind.example.com"
	m.Console, m.Logger = &strings.Builder{}, slog.New(slog.DiscardHandler)
	err := m.Run(context.Background())
	if err == nil {
		m.Close()
		t.Fatal("serve started with --public-url rewind.example.com, want a refusal")
	}
	if !strings.Contains(err.Error(), "like https://rewind.example.com") {
		t.Errorf("error = %q, want it to show the form expected", err)
	}
}
