package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type tokenStore interface {
	FindTokens(ctx context.Context, userID int64) ([]*db.Token, error)
	FindTokenByID(ctx context.Context, id int64) (*db.Token, error)
	CreateToken(ctx context.Context, userID int64, name string) (string, *db.Token, error)
	RevokeToken(ctx context.Context, id int64) error
	FindUsers(ctx context.Context) ([]*db.User, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// Tokens is the API tokens page: everyone manages their own tokens, admins
// see and revoke all of them.
type Tokens struct {
	store   tokenStore
	session Session
	now     func() time.Time
}

func NewTokens(store tokenStore, session Session, now func() time.Time) *Tokens {
	return &Tokens{store: store, session: session, now: now}
}

// List is GET /tokens.
func (h *Tokens) List(c echo.Context) error {
	return h.renderPage(c, http.StatusOK, views.TokensData{})
}

// Create is POST /tokens; the response is the only time the secret is shown.
func (h *Tokens) Create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	name := strings.TrimSpace(c.FormValue("name"))
	if name == "" {
		name = "token"
	}
	secret, tok, err := h.store.CreateToken(ctx, u.ID, name)
	var ve *db.ValidationError
	if errors.As(err, &ve) {
		return h.renderPage(c, http.StatusUnprocessableEntity, views.TokensData{Name: name, Errors: views.FromValidation(ve)})
	}
	if err != nil {
		return err
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "token.create", Actor: actor(c),
		Summary: fmt.Sprintf("Created API token %q (%s…) for %s", tok.Name, tok.Prefix, u.Email)}); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return h.renderPage(c, http.StatusCreated, views.TokensData{Created: &views.CreatedToken{Name: tok.Name, Secret: secret}})
}

// Revoke is POST /tokens/:id/revoke.
func (h *Tokens) Revoke(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return db.ErrNotFound
	}
	ctx := c.Request().Context()
	tok, err := h.store.FindTokenByID(ctx, id)
	if err != nil {
		return err
	}
	if tok.UserID != u.ID && u.Role != db.RoleAdmin {
		return forbidden("Only admins can revoke other users' tokens.")
	}
	if err := h.store.RevokeToken(ctx, id); err != nil {
		return err
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "token.revoke", Actor: actor(c),
		Summary: fmt.Sprintf("Revoked API token %q (%s…)", tok.Name, tok.Prefix)}); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("Token %s revoked.", tok.Name))
	return redirect(c, "/tokens")
}

func (h *Tokens) renderPage(c echo.Context, status int, d views.TokensData) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	owner := map[int64]string{u.ID: u.Email}
	var toks []*db.Token
	if u.Role == db.RoleAdmin {
		d.ShowOwner = true
		if toks, err = h.store.FindTokens(ctx, 0); err != nil {
			return err
		}
		users, err := h.store.FindUsers(ctx)
		if err != nil {
			return err
		}
		for _, o := range users {
			owner[o.ID] = o.Email
		}
	} else if toks, err = h.store.FindTokens(ctx, u.ID); err != nil {
		return err
	}
	for _, t := range toks {
		d.Tokens = append(d.Tokens, views.TokenRow{Token: t, Owner: owner[t.UserID]})
	}
	d.Now = h.now()
	return render(c, status, views.TokensPage(page(c, "API tokens", "tokens"), d))
}
