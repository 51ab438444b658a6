// Command rewind is a self-hosted backup and restore system in one binary:
// `rewind serve` runs the dashboard, the JSON API and the job runner; the
// other subcommands are offline admin commands on the data directory or
// clients of the JSON API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/files"
	"github.com/rewind/rewind/backup/gate"
	"github.com/rewind/rewind/backup/mysql"
	"github.com/rewind/rewind/backup/pitr"
	"github.com/rewind/rewind/backup/pitr/filesnap"
	"github.com/rewind/rewind/backup/pitr/mariadb"
	"github.com/rewind/rewind/backup/pitr/pgwal"
	"github.com/rewind/rewind/backup/pitr/redisrepl"
	pitrsqlite "github.com/rewind/rewind/backup/pitr/sqlite"
	"github.com/rewind/rewind/backup/postgres"
	"github.com/rewind/rewind/backup/redis"
	"github.com/rewind/rewind/backup/sqlite"
	"github.com/rewind/rewind/backup/storage"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/jobs/demo"
	"github.com/rewind/rewind/jobs/notify"
	"github.com/rewind/rewind/web"
	"github.com/rewind/rewind/web/cli"
)

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(backup.MemoryLimit)
	}
	if err := newRootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "rewind:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "rewind",
		Short:         "Rewind backs up and restores your environments' databases and files",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand())
	root.AddCommand(cli.Commands()...)
	return root
}

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
	f.StringVar(&m.PublicURL, "public-url", "", "the dashboard's address as users reach it, for the links in notifications and the setup link (default: the listen address)")
	f.BoolVar(&m.SecureCookies, "secure-cookies", false, "mark the session cookie Secure (behind a TLS-terminating proxy)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cli.WithEnv(cmd)
}

// drivers are the engine's service types.
func drivers() map[string]backup.Driver {
	return map[string]backup.Driver{
		backup.TypePostgreSQL: postgres.New,
		backup.TypeMySQL:      mysql.New,
		backup.TypeRedis:      redis.New,
		backup.TypeSQLite:     sqlite.Driver,
		backup.TypeFiles: func(s backup.ServiceSpec) (backup.Source, error) {
			return files.New(s.Path, s.Exclude)
		},
	}
}

// pitrKinds are the service types point-in-time protection covers, by type: one line per kind.
func pitrKinds(catalogPath string) map[string]pitr.Kind {
	out := map[string]pitr.Kind{}
	for _, k := range []pitr.Kind{
		pgwal.Kind{},
		&mariadb.Kind{},
		redisrepl.Kind{},
		pitrsqlite.New(catalogPath), // never follows Rewind's own catalog
		filesnap.Kind{},
	} {
		out[k.Type()] = k
	}
	return out
}

// setupLinkTTL is how long the one-time first-admin link printed at start works.
const setupLinkTTL = 24 * time.Hour

// Main is the running server: catalog, job runner and HTTP server. Set the
// fields, call Run, then Close (tests boot it on 127.0.0.1:0 in a temp dir).
type Main struct {
	DataDir string
	Addr    string
	Storage string // --storage: "" (<data>/repo), file:///path, s3://BUCKET/PREFIX?...
	// PublicURL is the dashboard's address as its users reach it (behind a reverse proxy, say), for the links
	// in notifications and the setup link; "" is the listen address.
	PublicURL string
	// CatalogSaveInterval is how often the catalog is saved into the repository when it changed (1 minute
	// when 0; tests shorten it).
	CatalogSaveInterval time.Duration
	Demo                bool
	SecureCookies       bool
	// Console receives what the operator must read once: the setup link and
	// the demo credentials. Logger receives the structured logs.
	Console io.Writer
	Logger  *slog.Logger
	Getenv  func(string) string
	Now     func() time.Time

	Catalog *db.DB
	demo    *demo.Shops
	demoURL map[string]string // demo shop URL (its gate) by environment
	Repo    *backup.Repository
	Gates   *gate.Set
	Runner  *jobs.Runner
	Ops     *jobs.Operations
	// Notifier delivers the notifications of the channels set on /settings/notifications.
	Notifier *notify.Notifier
	Server   *web.Server
	// Scheduler takes the plan's automated backups and applies retention.
	Scheduler *jobs.Scheduler
	// PITR follows the services (of the types pitrKinds covers) of environments with point-in-time protection on.
	PITR *jobs.PITR
	// CatalogSaver saves the catalog and secret.key into the repository.
	CatalogSaver *jobs.CatalogSaver
	// StorageURL describes the repository's storage, without credentials.
	StorageURL string
	// Copier copies the repository to the copy target set on the storage page.
	Copier *jobs.Copier
}

// NewMain returns a Main with the defaults of `rewind serve`.
func NewMain() *Main {
	return &Main{
		DataDir: cli.DefaultDataDir,
		Addr:    "127.0.0.1:8080",
		Console: os.Stdout,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Getenv:  os.Getenv,
		Now:     time.Now,
	}
}

// Run opens the catalog, prepares the first admin (or the setup link) and the
// demo project, starts the job runner and serves HTTP in the background.
func (m *Main) Run(ctx context.Context) error {
	if m.PublicURL != "" {
		if u, err := url.Parse(m.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q: give the dashboard's address as its users open it, "+
				"like https://rewind.example.com", m.PublicURL)
		}
	}
	catalog, secrets, err := db.OpenDataDir(ctx, m.DataDir)
	if err != nil {
		return err
	}
	m.Catalog = catalog
	catalog.Now = m.Now

	var demoEmail, demoPassword string
	if m.Demo {
		if demoEmail, demoPassword, err = demo.Seed(ctx, catalog, m.DataDir); err != nil {
			return fmt.Errorf("seed demo project: %w", err)
		}
	}
	if err := m.createAdminFromEnv(ctx); err != nil {
		return err
	}

	copyTo, err := jobs.LoadCopyTarget(ctx, catalog)
	if err != nil {
		return fmt.Errorf("read the copy target: %w", err)
	}
	var readFromCopy func(backup.StorageOpener) backup.StorageOpener // a server started with a copy target reads from it while the primary is down
	if copyTo != nil {
		readFromCopy = storage.Failover(*copyTo, m.Logger)
	}
	password := func() (string, error) { return db.RepoPassword(m.DataDir, m.Getenv, m.Console) }
	if m.Repo, m.StorageURL, err = storage.OpenRepository(ctx, m.DataDir, m.Storage, password, readFromCopy); err != nil {
		return err
	}
	interval := m.CatalogSaveInterval
	if interval <= 0 {
		interval = time.Minute
	}
	m.CatalogSaver = &jobs.CatalogSaver{Catalog: catalog, Repo: m.Repo, DataDir: m.DataDir, Interval: interval,
		Logger: m.Logger, Now: m.Now}
	m.CatalogSaver.Start()
	if m.Demo {
		if m.demo, m.demoURL, err = demo.StartShops(ctx, catalog, m.Logger); err != nil {
			return fmt.Errorf("start the demo shops: %w", err)
		}
	}
	if err := m.startGates(ctx); err != nil {
		return err
	}
	m.Ops = &jobs.Operations{
		Catalog: catalog,
		Engine:  &backup.Engine{Repo: m.Repo, Drivers: drivers(), Now: m.Now},
		Pauser:  m.Gates,
		Now:     m.Now,
	}
	m.Runner = jobs.NewRunner(catalog, m.Ops.Build, 2, m.Logger)
	m.Runner.Interrupted = m.Ops.Interrupted
	m.Runner.Now = m.Now
	m.Ops.Runner = m.Runner
	// Links name the listen address until the server is open (work interrupted by the last stop is reported
	// before that), then its URL.
	m.Notifier = &notify.Notifier{Store: catalog, BaseURL: "http://" + m.Addr, Log: m.Logger, Now: m.Now,
		Watch: &notify.Watch{Catalog: catalog, Storage: m.CatalogSaver}}
	m.Notifier.Start()
	m.Runner.OnActivityEnd = m.Notifier.ActivityEnded
	if err := m.Runner.Start(ctx); err != nil {
		return fmt.Errorf("start job runner: %w", err)
	}
	if err := m.Ops.Recover(ctx); err != nil {
		return err
	}
	m.PITR = &jobs.PITR{Catalog: catalog, Repo: m.Repo, SpoolDir: filepath.Join(m.DataDir, "pitr"), Log: m.Logger,
		Kinds: pitrKinds(catalog.Path())}
	m.Ops.PITR = m.PITR
	m.PITR.Start(ctx)
	m.Scheduler = &jobs.Scheduler{Catalog: catalog, Ops: m.Ops, Now: m.Now, Log: m.Logger}
	m.Copier = &jobs.Copier{Catalog: catalog, Repo: m.Repo, Logger: m.Logger, Now: m.Now, Interval: 10 * time.Minute}
	m.Ops.AfterBackup = func(ctx context.Context, env string, p *jobs.Progress) {
		m.Scheduler.AfterBackup(ctx, env, p)
		m.Copier.Trigger() // every completed backup goes to the copy target too
	}
	m.Copier.Start()
	if err := m.Scheduler.Start(ctx); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}

	m.Server, err = web.NewServer(web.Config{
		Catalog: catalog, SessionKey: secrets.SessionKey, SecureCookies: m.SecureCookies,
		Logger: m.Logger, Now: m.Now,
		Ops: m.Ops, Runner: m.Ops, Gates: m.Gates, Plans: m.Ops, Scheduler: m.Scheduler,
		Notifier: m.Notifier, PITR: m.Ops, PITRChecker: m.PITR,
		Storage: jobs.NewStorageInspector(storage.NewPrimary(m.Storage, m.StorageURL), m.Repo, m.CatalogSaver, m.Copier,
			catalog, m.Now),
		EnvironmentChanged: func(ctx context.Context) {
			if err := m.SyncGates(ctx); err != nil {
				m.Logger.Error("sync request gates", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	if err := m.Server.Open(m.Addr); err != nil {
		return err
	}
	url := m.URL()
	m.Notifier.SetBaseURL(url)
	m.Logger.Info("rewind is serving", "url", url, "data", m.DataDir)

	if m.Demo {
		fmt.Fprintf(m.Console, "Demo project ready. Open %s/environments and sign in as %s with password %s\n", url, demoEmail, demoPassword)
		for _, de := range demo.Environments() {
			if u := m.demoURL[de.Name]; u != "" {
				fmt.Fprintf(m.Console, "The demo shop of %s (its data is what Rewind backs up) is at %s\n", de.Name, u)
			}
		}
	}
	n, err := catalog.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		secret, err := catalog.CreateSetupToken(ctx, setupLinkTTL)
		if err != nil {
			return fmt.Errorf("create setup link: %w", err)
		}
		fmt.Fprintf(m.Console, "No users yet. Create the first admin within %s at:\n\n    %s/setup?token=%s\n\n(or set REWIND_ADMIN_EMAIL and REWIND_ADMIN_PASSWORD, or run `rewind users:add`)\n",
			setupLinkTTL, url, secret)
	}
	return nil
}

// createAdminFromEnv creates the first admin from REWIND_ADMIN_EMAIL and
// REWIND_ADMIN_PASSWORD when there are no users yet.
func (m *Main) createAdminFromEnv(ctx context.Context) error {
	email, password := m.Getenv("REWIND_ADMIN_EMAIL"), m.Getenv("REWIND_ADMIN_PASSWORD")
	if email == "" && password == "" {
		return nil
	}
	if email == "" || password == "" {
		return errors.New("set both REWIND_ADMIN_EMAIL and REWIND_ADMIN_PASSWORD to create the first admin, or neither")
	}
	n, err := m.Catalog.CountUsers(ctx)
	if err != nil || n > 0 {
		return err
	}
	u, err := m.Catalog.CreateUser(ctx, email, password, db.RoleAdmin)
	if err != nil {
		return fmt.Errorf("create the first admin from REWIND_ADMIN_EMAIL: %w", err)
	}
	m.Logger.Info("created the first admin from the environment", "email", u.Email)
	return m.Catalog.CreateActivity(ctx, &db.Activity{Type: "user.create", Actor: "system",
		Summary: "Created the first admin " + u.Email + " from REWIND_ADMIN_EMAIL"})
}

// URL is the address to open in a browser: the public URL when set, else the listen address.
func (m *Main) URL() string {
	if m.PublicURL != "" {
		return strings.TrimSuffix(m.PublicURL, "/")
	}
	if m.Server == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(m.Server.Addr())
	if err != nil {
		return m.Server.URL()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// startGates starts the request gates of the environments that have one. A gate that cannot start (its address
// is taken) is logged, not fatal: the dashboard must come up so the operator can fix it.
func (m *Main) startGates(ctx context.Context) error {
	m.Gates = gate.NewSet(gate.Config{}, m.Logger)
	return m.SyncGates(ctx)
}

// SyncGates makes the running gates match the environments' gate settings.
func (m *Main) SyncGates(ctx context.Context) error {
	envs, err := m.Catalog.FindEnvironments(ctx, db.EnvironmentFilter{})
	if err != nil {
		return err
	}
	var eps []gate.Endpoint
	for _, e := range envs {
		if e.Status == db.StatusActive {
			eps = append(eps, gate.Endpoint{Environment: e.Name, Listen: e.Gate.Listen, Upstream: e.Gate.Upstream})
		}
	}
	if err := m.Gates.Sync(eps); err != nil {
		m.Logger.Error("some request gates could not start", "err", err)
	}
	return nil
}

// Close shuts down in order: HTTP (waiting for requests in flight), then the
// job runner, then the gates, the repository and the catalog.
func (m *Main) Close() error {
	var errs []error
	if m.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errs = append(errs, m.Server.Close(ctx))
		cancel()
	}
	if m.Scheduler != nil {
		m.Scheduler.Close()
	}
	if m.PITR != nil {
		m.PITR.Close()
	}
	if m.Runner != nil {
		m.Runner.Close()
	}
	if m.Notifier != nil {
		m.Notifier.Close() // after the runner, whose last activities it was told of
	}
	if m.Gates != nil {
		errs = append(errs, m.Gates.Close())
	}
	m.demo.Close() // after the gates, which serve the requests they held first
	if m.CatalogSaver != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		errs = append(errs, m.CatalogSaver.Close(ctx))
		cancel()
	}
	if m.Copier != nil {
		// The last catalog save goes to the copy target too, so a server rebuilt from the copy has it.
		m.Copier.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := m.Copier.Sync(ctx); err != nil {
			m.Logger.Error("last copy to the copy target", "err", err)
		}
		cancel()
	}
	if m.Repo != nil {
		errs = append(errs, m.Repo.Close(context.Background()))
	}
	if m.Catalog != nil {
		errs = append(errs, m.Catalog.Close())
	}
	return errors.Join(errs...)
}
