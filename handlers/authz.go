package handlers

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/views"
)

// The role rules, for pages and tokens alike:
//   - any signed-in user (or token) reads environments and activities;
//   - creating, editing, deactivating and activating an environment needs the
//     admin role for that environment's type (User.RoleFor), and for the new
//     type when the type changes;
//   - managing users needs the admin role (the user's own role, not an
//     override);
//   - everyone manages their own API tokens; admins see and revoke all.

// user is the signed-in user or token owner; handlers behind web's auth
// middleware always have one.
func user(c echo.Context) (*db.User, error) {
	p := PrincipalOf(c)
	if p == nil || p.User == nil {
		return nil, ErrUnauthorized
	}
	return p.User, nil
}

func actor(c echo.Context) string {
	if p := PrincipalOf(c); p != nil && p.User != nil {
		return p.Actor()
	}
	return ""
}

// envAdmin says whether u may change environments of the given types.
func envAdmin(u *db.User, types ...string) views.Permission {
	for _, t := range types {
		if t == "" {
			continue
		}
		if r := u.RoleFor(t); r != db.RoleAdmin {
			return views.Deny(fmt.Sprintf("Only admins can change %s environments; your role for them is %s.", t, r))
		}
	}
	return views.Allow
}

// anyEnvAdmin says whether u may create an environment of some type.
func anyEnvAdmin(u *db.User) views.Permission {
	for _, t := range db.EnvironmentTypes() {
		if u.RoleFor(t) == db.RoleAdmin {
			return views.Allow
		}
	}
	return views.Deny(fmt.Sprintf("Only admins can create environments; your role is %s.", u.Role))
}

// creatableTypes are the valid environment types among types; an unknown type
// is left to validation, which names it beside the field.
func knownTypes(types ...string) []string {
	var out []string
	for _, t := range types {
		if db.ValidEnvironmentType(t) {
			out = append(out, t)
		}
	}
	return out
}

func requireEnvAdmin(u *db.User, types ...string) error {
	if perm := anyEnvAdmin(u); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	if perm := envAdmin(u, knownTypes(types...)...); !perm.Allowed {
		return forbidden(perm.Reason)
	}
	return nil
}

func requireAdmin(u *db.User) error {
	if u.Role != db.RoleAdmin {
		return forbidden("Only admins can manage users; your role is " + u.Role + ".")
	}
	return nil
}

// requireProjectAdmin refuses anyone but an admin (the user's own role, not an override) the project-wide
// action, e.g. "see the backup storage and test its connection".
func requireProjectAdmin(c echo.Context, action string) error {
	u, err := user(c)
	if err != nil {
		return err
	}
	if u.Role != db.RoleAdmin {
		return forbidden("Only admins can " + action + "; your role is " + u.Role + ".")
	}
	return nil
}
