// Package testserver opens backup/internal/testserver's private PostgreSQL, MariaDB and Redis servers to the
// tests outside backup/ (the end-to-end tests of package main). It only re-exports; see the internal package for
// how the servers are started, shared per test binary and stopped:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
package testserver

import (
	"github.com/rewind/rewind/backup/internal/testserver"
)

// Servers: one of each kind per test binary, started on first use; a test is skipped when the binary is not
// installed.
type (
	Postgres = testserver.Postgres
	MariaDB  = testserver.MariaDB
	Redis    = testserver.Redis
)

var (
	// Main runs a package's tests and stops the servers they started.
	Main = testserver.Main
	// StopAll stops every server started so far.
	StopAll       = testserver.StopAll
	StartPostgres = testserver.StartPostgres
	StartMariaDB  = testserver.StartMariaDB
	// StartMariaDBBinlog is a second MariaDB server that writes a binary log (log_bin, ROW, server_id 1).
	StartMariaDBBinlog = testserver.StartMariaDBBinlog
	StartRedis         = testserver.StartRedis
	// UniqueName returns prefix followed by random hex, for database names.
	UniqueName = testserver.UniqueName
)
