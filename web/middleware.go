package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
)

// errCSRF is a form or HTMX request without the session's CSRF token.
var errCSRF = &handlers.Error{Status: http.StatusForbidden, Code: "csrf",
	Message: "This form has expired or did not come from this site. Reload the page and try again."}

var errBadToken = &handlers.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
	Message: "The API token is unknown or revoked, or its user is disabled. Create a new token on the API tokens page."}

// userFinder is what the session middleware needs of the catalog.
type userFinder interface {
	// FindUserByIDRecent may answer from a read of up to a second ago, so a user disabled by another process
	// (an offline admin command) is refused within a second; changes through this server count at once.
	FindUserByIDRecent(ctx context.Context, id int64) (*db.User, error)
}

// tokenAuthenticator is what the API middleware needs of the catalog.
type tokenAuthenticator interface {
	// AuthenticateToken returns db.ErrBadCredentials for an unknown or
	// revoked token or a disabled user, and records the token's last use.
	AuthenticateToken(ctx context.Context, secret string) (*db.User, *db.Token, error)
}

// sessionAuth loads the signed-in user from the session cookie (disabled or
// deleted users count as signed out), makes sure the session has a CSRF
// token, checks it on every unsafe method, and hands one-time messages to
// full-page GETs.
func sessionAuth(sm *sessionManager, users userFinder) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, err := sm.csrfToken(c)
			if err != nil {
				return err
			}
			handlers.SetCSRFToken(c, token)
			if !safeMethod(c.Request().Method) {
				got := c.Request().Header.Get("X-CSRF-Token")
				if got == "" {
					got = c.FormValue("_csrf")
				}
				if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
					return errCSRF
				}
			}
			if id := sm.userID(c); id != 0 {
				u, err := users.FindUserByIDRecent(c.Request().Context(), id)
				switch {
				case err == nil && !u.Disabled:
					handlers.SetPrincipal(c, &handlers.Principal{User: u})
				case err == nil, errors.Is(err, db.ErrNotFound):
					// signed out: the account is disabled or gone
				default:
					return err
				}
			}
			if c.Request().Method == http.MethodGet && c.Request().Header.Get("HX-Request") != "true" {
				f, err := sm.flashes(c)
				if err != nil {
					return err
				}
				handlers.SetFlashes(c, f)
			}
			return next(c)
		}
	}
}

// requireUser refuses anonymous requests; the error handler sends browsers
// to the sign-in page.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if handlers.PrincipalOf(c) == nil {
			return handlers.ErrUnauthorized
		}
		return next(c)
	}
}

// bearerAuth authenticates API requests by "Authorization: Bearer TOKEN"
// only; cookies are never looked at, so the API needs no CSRF token.
func bearerAuth(tokens tokenAuthenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			scheme, secret, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
				return handlers.ErrUnauthorized
			}
			u, tok, err := tokens.AuthenticateToken(c.Request().Context(), strings.TrimSpace(secret))
			if errors.Is(err, db.ErrBadCredentials) || errors.Is(err, db.ErrNotFound) {
				return errBadToken
			}
			if err != nil {
				return err
			}
			handlers.SetPrincipal(c, &handlers.Principal{User: u, Token: tok})
			return next(c)
		}
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// staticCache lets browsers keep the embedded assets for an hour.
func staticCache(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		return next(c)
	}
}
