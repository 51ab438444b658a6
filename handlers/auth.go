package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type authenticator interface {
	// Authenticate returns db.ErrBadCredentials for an unknown email, a wrong
	// password and a disabled account alike.
	Authenticate(ctx context.Context, email, password string) (*db.User, error)
}

// LoginLimiter bounds sign-in attempts per client address and per account.
type LoginLimiter interface {
	Allow(ip, account string) bool
}

// Auth signs users in and out.
type Auth struct {
	users   authenticator
	session Session
	limiter LoginLimiter
}

func NewAuth(users authenticator, session Session, limiter LoginLimiter) *Auth {
	return &Auth{users: users, session: session, limiter: limiter}
}

// LoginForm is GET /login.
func (h *Auth) LoginForm(c echo.Context) error {
	if PrincipalOf(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return render(c, http.StatusOK, views.LoginPage(page(c, "Sign in", ""), views.LoginData{Next: safeNext(c.QueryParam("next"))}))
}

// Login is POST /login.
func (h *Auth) Login(c echo.Context) error {
	d := views.LoginData{Email: strings.TrimSpace(c.FormValue("email")), Next: safeNext(c.FormValue("next"))}
	if !h.limiter.Allow(c.RealIP(), db.NormalizeEmail(d.Email)) {
		c.Response().Header().Set("Retry-After", "60")
		d.Error = "Too many sign-in attempts. Wait a minute and try again."
		return render(c, http.StatusTooManyRequests, views.LoginPage(page(c, "Sign in", ""), d))
	}
	u, err := h.users.Authenticate(c.Request().Context(), d.Email, c.FormValue("password"))
	if errors.Is(err, db.ErrBadCredentials) {
		d.Error = "Wrong email or password, or the account is disabled."
		return render(c, http.StatusUnauthorized, views.LoginPage(page(c, "Sign in", ""), d))
	}
	if err != nil {
		return err
	}
	if err := h.session.LogIn(c, u.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, d.Next)
}

// Logout is POST /logout.
func (h *Auth) Logout(c echo.Context) error {
	if err := h.session.LogOut(c); err != nil {
		return err
	}
	return redirect(c, "/login")
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/environments"
	}
	return next
}
