package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func newServeCommand() *cobra.Command {
	m := NewMain()
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve [--addr 127.0.0.1:8080] [--data ./rewind-data] [--storage URL] [--demo] [--secure-cookies]",
		Short: "Run the dashboard, the JSON API and the job runner",
		Long: `Run the dashboard, the JSON API and the job runner until SIGINT or SIGTERM.

Every flag can also be set through REWIND_<FLAG> (e.g. REWIND_ADDR, REWIND_DATA).
On first start with no users, the first admin is created from REWIND_ADMIN_EMAIL and
REWIND_ADMIN_PASSWORD, or a one-time setup link is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			m.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			m.Console = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := m.Run(ctx); err != nil {
				_ = m.Close()
				return err
			}
			<-ctx.Done()
			m.Logger.Info("shutting down")
			return m.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&m.Addr, "addr", m.Addr, "address to listen on")
	f.StringVar(&m.DataDir, "data", m.DataDir, "data directory (catalog, secret.key, repository)")
	f.StringVar(&m.Storage, "storage", "", "where backups are stored: file:///path (default: <data>/repo) or s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true")
	f.BoolVar(&m.Demo, "demo", false, "create a demo project (environments main and staging) and print its credentials")
	f.BoolVar(&m.SecureCookies, "secure-cookies", false, "mark the session cookie Secure (behind a TLS-terminating proxy)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return withEnv(cmd)
}
