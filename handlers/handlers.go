// Package handlers holds one small file per resource: pages, HTMX partials and
// JSON API handlers. A handler parses the request, makes one call to the
// catalog through a small interface declared beside it, and renders through
// render or writes JSON. Authentication, sessions and CSRF happen in web before
// a handler runs; the role rules live in authz.go.
package handlers

import (
	"bytes"
	"net/http"
	"slices"
	"sync"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

// Principal is who makes a request: a signed-in user, or a user acting
// through an API token (Token set).
type Principal struct {
	User  *db.User
	Token *db.Token
}

// Actor is the name written on activities.
func (p *Principal) Actor() string {
	if p.Token != nil {
		return p.User.Email + " (token " + p.Token.Name + ")"
	}
	return p.User.Email
}

const (
	principalKey = "rewind.principal"
	csrfKey      = "rewind.csrf"
	flashesKey   = "rewind.flashes"
)

// SetPrincipal records who makes the request; web's auth middleware calls it.
func SetPrincipal(c echo.Context, p *Principal) { c.Set(principalKey, p) }

// PrincipalOf returns who makes the request, or nil for anonymous requests.
func PrincipalOf(c echo.Context) *Principal {
	p, _ := c.Get(principalKey).(*Principal)
	return p
}

// SetCSRFToken makes the session's CSRF token available to the forms.
func SetCSRFToken(c echo.Context, token string) { c.Set(csrfKey, token) }

// CSRFToken is the token the forms of this response carry.
func CSRFToken(c echo.Context) string {
	s, _ := c.Get(csrfKey).(string)
	return s
}

// SetFlashes hands the one-time messages read from the session to the page.
func SetFlashes(c echo.Context, f []views.Flash) { c.Set(flashesKey, f) }

// Session is what handlers need of the cookie session; web implements it.
type Session interface {
	// LogIn starts a fresh session for the user (new cookie, new CSRF token).
	LogIn(c echo.Context, userID int64) error
	// LogOut ends the session.
	LogOut(c echo.Context) error
	// Flash queues a message for the next page the user sees.
	Flash(c echo.Context, kind, message string) error
}

// render writes a templ component with the given status. An HTMX request that
// targets one of views.Fragments gets only that fragment of the component.
func render(c echo.Context, status int, comp templ.Component) error {
	buf := renderBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledRender {
			buf.Reset()
			renderBuffers.Put(buf)
		}
	}()
	ctx := c.Request().Context()
	var err error
	if t := hxTarget(c); t != "" && slices.Contains(views.Fragments(), t) {
		err = templ.RenderFragments(ctx, buf, comp, t)
	} else {
		err = comp.Render(ctx, buf)
	}
	if err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// renderBuffers recycles the buffers pages are rendered into: growing a fresh buffer to a 40 KB Backups tab
// was half the bytes that page allocated. HTMLBlob has written the bytes out when render returns.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledRender keeps a rare huge page from pinning its buffer.
const maxPooledRender = 1 << 20

// page builds the part of every page that comes from the request.
func page(c echo.Context, title, nav string) views.Page {
	p := views.Page{Title: title, Nav: nav, CSRF: CSRFToken(c)}
	if pr := PrincipalOf(c); pr != nil {
		p.User = pr.User
	}
	p.Flashes, _ = c.Get(flashesKey).([]views.Flash)
	return p
}

// redirect answers a form post with 303 See Other (HX-Redirect for HTMX).
func redirect(c echo.Context, url string) error {
	if isHTMX(c) {
		c.Response().Header().Set("HX-Redirect", url)
		return c.NoContent(http.StatusNoContent)
	}
	return c.Redirect(http.StatusSeeOther, url)
}
