package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

type userStore interface {
	FindUsers(ctx context.Context) ([]*db.User, error)
	FindUserByID(ctx context.Context, id int64) (*db.User, error)
	CreateUser(ctx context.Context, email, password, role string) (*db.User, error)
	UpdateUser(ctx context.Context, id int64, upd db.UserUpdate) (*db.User, error)
	CreateActivity(ctx context.Context, a *db.Activity) error
}

// Users is the admin page for accounts: add, change role and per-type
// overrides, disable.
type Users struct {
	store   userStore
	session Session
}

func NewUsers(store userStore, session Session) *Users {
	return &Users{store: store, session: session}
}

// List is GET /users.
func (h *Users) List(c echo.Context) error {
	return h.renderPage(c, http.StatusOK, views.UsersData{})
}

// Create is POST /users.
func (h *Users) Create(c echo.Context) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(u); err != nil {
		return err
	}
	ctx := c.Request().Context()
	nu := views.NewUser{Email: strings.TrimSpace(c.FormValue("email")), Role: c.FormValue("role")}
	created, err := h.store.CreateUser(ctx, nu.Email, c.FormValue("password"), nu.Role)
	var ve *db.ValidationError
	switch {
	case errors.As(err, &ve):
		nu.Errors = views.FromValidation(ve)
	case errors.Is(err, db.ErrConflict):
		nu.Errors = views.Errors{"email": "a user with this email already exists"}
	case err != nil:
		return err
	}
	if nu.Errors != nil {
		return h.renderPage(c, http.StatusUnprocessableEntity, views.UsersData{New: nu})
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "user.create", Actor: actor(c),
		Summary: fmt.Sprintf("Added user %s as %s", created.Email, created.Role)}); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("User %s added.", created.Email))
	return redirect(c, "/users")
}

// Update is POST /users/:id: role, per-type overrides and disabled.
func (h *Users) Update(c echo.Context) error {
	me, err := user(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(me); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return db.ErrNotFound
	}
	role := c.FormValue("role")
	disabled := c.FormValue("disabled") == "on"
	overrides := map[string]string{}
	for _, t := range db.EnvironmentTypes() {
		if r := c.FormValue("override_" + t); r != "" {
			overrides[t] = r
		}
	}
	if id == me.ID && (role != db.RoleAdmin || disabled) {
		return h.renderPage(c, http.StatusUnprocessableEntity, views.UsersData{EditID: id, EditErrors: views.Errors{
			"role": "You cannot remove your own admin role or disable yourself: ask another admin to do it."}})
	}
	ctx := c.Request().Context()
	updated, err := h.store.UpdateUser(ctx, id, db.UserUpdate{Role: &role, RoleOverrides: &overrides, Disabled: &disabled})
	var ve *db.ValidationError
	if errors.As(err, &ve) {
		return h.renderPage(c, http.StatusUnprocessableEntity, views.UsersData{EditID: id, EditErrors: views.FromValidation(ve)})
	}
	if err != nil {
		return err
	}
	if err := h.store.CreateActivity(ctx, &db.Activity{Type: "user.update", Actor: actor(c),
		Summary: fmt.Sprintf("Updated user %s: %s", updated.Email, describeUser(updated))}); err != nil {
		return err
	}
	_ = h.session.Flash(c, "success", fmt.Sprintf("User %s saved.", updated.Email))
	return redirect(c, "/users")
}

func (h *Users) renderPage(c echo.Context, status int, d views.UsersData) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(u); err != nil {
		return err
	}
	if d.Users, err = h.store.FindUsers(c.Request().Context()); err != nil {
		return err
	}
	d.Me = u.ID
	return render(c, status, views.UsersPage(page(c, "Users", "users"), d))
}

func describeUser(u *db.User) string {
	parts := []string{"role " + u.Role}
	for _, t := range db.EnvironmentTypes() {
		if r, ok := u.RoleOverrides[t]; ok {
			parts = append(parts, t+" "+r)
		}
	}
	if u.Disabled {
		parts = append(parts, "disabled")
	}
	return strings.Join(parts, ", ")
}
