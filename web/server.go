// Package web is Rewind's HTTP server: the echo router, request ids and
// logging, sessions, CSRF, authentication (session cookie for pages, bearer
// token for /api/), the central error handler and the embedded static files.
// The pages and API themselves are in handlers.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/static"
)

// Config is everything the server needs; Catalog and SessionKey are required.
type Config struct {
	Catalog    *db.DB
	SessionKey []byte
	// SecureCookies marks the session cookie Secure even when this process
	// does not see TLS itself (behind a TLS-terminating proxy).
	SecureCookies bool
	Logger        *slog.Logger
	Now           func() time.Time
	LoginLimits   LoginLimits
	// Ops and Runner start and cancel backups and restores; without them the
	// backup actions answer 503. Gates feeds /metrics. EnvironmentChanged is
	// called after an environment is created or changed through the pages or
	// the API (rewind serve syncs the request gates).
	Ops                handlers.BackupOperations
	Runner             handlers.Canceller
	Gates              handlers.GateMetrics
	EnvironmentChanged func(ctx context.Context)
	// Plans previews and applies plan changes (jobs.Operations; nil: previews
	// list no backups); Scheduler is woken after a plan change.
	Plans     handlers.PlanOperations
	Scheduler handlers.Waker
	// Storage reports on the backup repository's storage (/settings/storage); nil: the page says so.
	Storage handlers.StorageInspector
	// Notifier sends the "Send test" of /settings/notifications (nil: the test says notifications are off).
	Notifier handlers.NotificationTester
	// PITR plans and starts restores to a moment, PITRChecker checks and reports point-in-time protection
	// (nil: those routes answer 503).
	PITR        handlers.PITROperations
	PITRChecker handlers.PITRChecker
}

// Server is the dashboard and JSON API.
type Server struct {
	echo   *echo.Echo
	http   *http.Server
	ln     net.Listener
	log    *slog.Logger
	served chan error
}

// NewServer builds the router.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Catalog == nil || len(cfg.SessionKey) == 0 {
		return nil, errors.New("web: catalog and session key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoginLimits == (LoginLimits{}) {
		cfg.LoginLimits = DefaultLoginLimits()
	}
	s := &Server{echo: echo.New(), log: cfg.Logger}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect() // X-Forwarded-For is not trusted: it would dodge the login limits
	e.HTTPErrorHandler = s.errorHandler

	e.Use(middleware.RequestID())
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRequestID: true, LogRemoteIP: true,
		HandleError: true, LogValuesFunc: s.logRequest,
	}))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY", ReferrerPolicy: "same-origin",
		ContentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
			"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
	}))
	e.Use(middleware.BodyLimit("4M"))

	sm := newSessionManager(cfg.SessionKey, cfg.SecureCookies, cfg.Now)
	cat := cfg.Catalog
	limiter := newLoginLimiter(cfg.LoginLimits, cfg.Now)

	auth := handlers.NewAuth(cat, sm, limiter)
	setup := handlers.NewSetup(cat, sm)
	envs := handlers.NewEnvironments(cat, sm, cfg.Now)
	acts := handlers.NewActivities(cat, cfg.Now)
	users := handlers.NewUsers(cat, sm)
	tokens := handlers.NewTokens(cat, sm, cfg.Now)
	envAPI := handlers.NewEnvironmentsAPI(cat, cfg.Now)
	actAPI := handlers.NewActivitiesAPI(cat)
	envs.Changed, envAPI.Changed = cfg.EnvironmentChanged, cfg.EnvironmentChanged
	backups := handlers.NewBackups(cat, cfg.Ops, cfg.Runner, sm, cfg.Now)
	backupAPI := handlers.NewBackupsAPI(backups)
	drillOps, _ := cfg.Ops.(handlers.DrillOperations) // jobs.Operations runs drills too
	drills := handlers.NewDrills(cat, drillOps, sm)
	envs.Drills, backups.Drills = drills, drills
	recovery := handlers.NewRecovery(cat, drillOps)
	envs.Recovery, envAPI.Recovery = recovery, recovery
	settings := handlers.NewSettings(cat, cfg.Plans, cfg.Scheduler, sm, cfg.Now)
	planAPI := handlers.NewPlanAPI(settings)
	metrics := handlers.NewMetrics(cat, cfg.Gates)
	storage := handlers.NewStorage(cfg.Storage, sm, cfg.Now)
	notifications := handlers.NewNotifications(cat, cfg.Notifier, sm, cfg.Now)
	notificationAPI := handlers.NewNotificationsAPI(notifications)
	pitr := handlers.NewPITR(cat, cfg.PITR, cfg.PITRChecker, sm, cfg.Now)
	envs.PITR = pitr

	e.GET("/healthz", func(c echo.Context) error {
		if _, err := cat.CountUsers(c.Request().Context()); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.Group("/static", staticCache).StaticFS("/", static.FS)
	e.GET("/metrics", metrics.Get, bearerAuth(cat))

	api := e.Group("/api/v1", bearerAuth(cat))
	api.GET("/environments", envAPI.List)
	api.GET("/environments/:env", envAPI.Get)
	api.PUT("/environments/:env", envAPI.Put)
	api.GET("/activities", actAPI.List)
	api.GET("/activities/:id", actAPI.Get)
	api.POST("/activities/:id/cancel", backupAPI.Cancel)
	api.GET("/environments/:env/backups", backupAPI.List)
	api.POST("/environments/:env/backups", backupAPI.Create)
	api.GET("/environments/:env/drills", drills.APIList)
	api.POST("/environments/:env/drills", drills.APICreate)
	api.GET("/backups/:id", backupAPI.Get)
	api.DELETE("/backups/:id", backupAPI.Delete)
	api.GET("/backups/:id/browse", backupAPI.Browse)
	api.GET("/backups/:id/restore", backupAPI.Plan)
	api.POST("/backups/:id/restore", backupAPI.Restore)
	api.GET("/backups/:id/download", backups.Download)
	api.GET("/environments/:env/restore", pitr.PlanAt)
	api.POST("/environments/:env/restore", pitr.RestoreAt)
	api.GET("/plan", planAPI.Get)
	api.PUT("/plan", planAPI.Put)
	api.GET("/notifications/channels", notificationAPI.List)
	api.POST("/notifications/channels", notificationAPI.Create)
	api.PUT("/notifications/channels/:id", notificationAPI.Update)
	api.DELETE("/notifications/channels/:id", notificationAPI.Delete)
	api.POST("/notifications/channels/:id/test", notificationAPI.Test)

	pages := e.Group("", sessionAuth(sm, cat))
	pages.GET("/login", auth.LoginForm)
	pages.POST("/login", auth.Login)
	pages.POST("/logout", auth.Logout)
	pages.GET("/setup", setup.Form)
	pages.POST("/setup", setup.Create)

	in := pages.Group("", requireUser)
	in.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/environments") })
	in.GET("/environments", envs.List)
	in.GET("/environments/new", envs.New)
	in.POST("/environments", envs.Create)
	in.GET("/environments/service-row", envs.ServiceRow)
	in.GET("/environments/:env", envs.Show("backups"))
	in.GET("/environments/:env/activity", envs.Show("activity"))
	in.GET("/environments/:env/settings", envs.Show("settings"))
	in.POST("/environments/:env", envs.Update)
	in.POST("/environments/:env/deactivate", envs.SetStatus(db.StatusInactive))
	in.POST("/environments/:env/activate", envs.SetStatus(db.StatusActive))
	in.POST("/environments/:env/pitr/test", pitr.Test)
	in.POST("/environments/:env/restore-at", pitr.RestorePage)
	in.GET("/environments/:env/restore-at/plan", pitr.PlanPage)
	in.POST("/environments/:env/backups", backups.Create)
	in.POST("/environments/:env/drills", drills.Create)
	in.GET("/backups/:id", backups.Show)
	in.GET("/backups/:id/browse", backups.Browse)
	in.GET("/backups/:id/restore", backups.RestoreForm)
	in.POST("/backups/:id/restore", backups.Restore)
	in.POST("/backups/:id/delete", backups.Delete)
	in.GET("/backups/:id/download", backups.Download)
	in.GET("/activities", acts.Page)
	in.POST("/activities/:id/cancel", backups.Cancel)
	in.GET("/settings", settings.Show)
	in.POST("/settings", settings.Update)
	in.GET("/settings/plan", settings.EditPlan)
	in.POST("/settings/plan", settings.ChangePlan)
	in.GET("/settings/storage", storage.Show)
	in.POST("/settings/storage/test", storage.Test)
	in.POST("/settings/storage/copy", storage.SetCopy)
	in.POST("/settings/storage/copy/delete", storage.RemoveCopy)
	in.POST("/settings/storage/copy/sync", storage.SyncCopy)
	in.GET("/backups/:id/stored-in", storage.StoredIn)
	in.GET("/settings/notifications", notifications.List)
	in.POST("/settings/notifications", notifications.Create)
	in.GET("/settings/notifications/:id", notifications.Edit)
	in.POST("/settings/notifications/:id", notifications.Update)
	in.POST("/settings/notifications/:id/delete", notifications.Delete)
	in.POST("/settings/notifications/:id/test", notifications.Test)
	in.GET("/users", users.List)
	in.POST("/users", users.Create)
	in.POST("/users/:id", users.Update)
	in.GET("/tokens", tokens.List)
	in.POST("/tokens", tokens.Create)
	in.POST("/tokens/:id/revoke", tokens.Revoke)
	return s, nil
}

// ServeHTTP serves a request through the router (tests use it directly).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Open listens on addr ("127.0.0.1:0" picks a port) and serves in the
// background.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.served = make(chan error, 1)
	go func() { s.served <- s.http.Serve(ln) }()
	return nil
}

// Addr is the address the server listens on, once open.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the base URL of the open server.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops accepting connections and waits for requests in flight until
// ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	err := s.http.Shutdown(ctx)
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
