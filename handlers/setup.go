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

type setupStore interface {
	CheckSetupToken(ctx context.Context, secret string) error
	UseSetupToken(ctx context.Context, secret, email, password string) (*db.User, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// Setup creates the first admin through the one-time link printed at start.
type Setup struct {
	store   setupStore
	session Session
}

func NewSetup(store setupStore, session Session) *Setup {
	return &Setup{store: store, session: session}
}

var errSetupLink = &Error{Status: http.StatusNotFound, Code: "not_found",
	Message: "This setup link is invalid, expired or already used. Restart `rewind serve` with no users to get a new one, or add an admin with `rewind users:add`."}

// Form is GET /setup?token=...
func (h *Setup) Form(c echo.Context) error {
	token := c.QueryParam("token")
	if err := h.store.CheckSetupToken(c.Request().Context(), token); err != nil {
		if errors.Is(err, db.ErrBadCredentials) || errors.Is(err, db.ErrNotFound) {
			return errSetupLink
		}
		return err
	}
	return render(c, http.StatusOK, views.SetupPage(page(c, "Set up", ""), views.SetupData{Token: token}))
}

// Create is POST /setup.
func (h *Setup) Create(c echo.Context) error {
	d := views.SetupData{Token: c.FormValue("token"), Email: strings.TrimSpace(c.FormValue("email"))}
	ctx := c.Request().Context()
	u, err := h.store.UseSetupToken(ctx, d.Token, d.Email, c.FormValue("password"))
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		d.Errors = views.FromValidation(ve)
		return render(c, http.StatusUnprocessableEntity, views.SetupPage(page(c, "Set up", ""), d))
	case errors.Is(err, db.ErrBadCredentials), errors.Is(err, db.ErrNotFound):
		return errSetupLink
	case errors.Is(err, db.ErrConflict):
		d.Errors = views.Errors{"email": "a user with this email already exists"}
		return render(c, http.StatusUnprocessableEntity, views.SetupPage(page(c, "Set up", ""), d))
	case err != nil:
		return err
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "user.create", Actor: u.Email,
		Summary: "Created the first admin " + u.Email + " through the setup link"}); err != nil {
		return err
	}
	if err := h.session.LogIn(c, u.ID); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", "Welcome to Rewind. Create your first environment to start.")
	return c.Redirect(http.StatusSeeOther, "/environments")
}
