package web

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/jobs"
	"github.com/rewind/rewind/views"
)

// apiError is the one JSON error shape of the API.
type apiError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Fields  []db.FieldError `json:"fields,omitempty"`
}

// classify maps any error to a status, a code and a message a user may see.
// Unknown errors become 500 with a message naming the request id only.
func classify(err error) (status int, e apiError) {
	var herr *handlers.Error
	var ve *db.ValidationError
	var eh *echo.HTTPError
	var qe *jobs.QuotaError
	switch {
	case errors.As(err, &qe):
		return http.StatusConflict, apiError{Code: "quota", Message: qe.Error() +
			". Send \"replace_oldest\": true (rewind backup:create --yes) to replace it."}
	case errors.As(err, &herr):
		return herr.Status, apiError{Code: herr.Code, Message: herr.Message}
	case errors.As(err, &ve):
		msgs := make([]string, 0, len(ve.Errors))
		for _, f := range ve.Errors {
			msgs = append(msgs, f.Field+": "+f.Message)
		}
		return http.StatusUnprocessableEntity, apiError{Code: "invalid",
			Message: "Nothing was saved: " + strings.Join(msgs, "; "), Fields: ve.Errors}
	case errors.Is(err, jobs.ErrRefused):
		return http.StatusConflict, apiError{Code: "refused",
			Message: strings.TrimSuffix(err.Error(), ": "+jobs.ErrRefused.Error())}
	case errors.Is(err, backup.ErrBadPath):
		return http.StatusBadRequest, apiError{Code: "bad_path", Message: err.Error()}
	case errors.Is(err, backup.ErrNotInBackup):
		return http.StatusNotFound, apiError{Code: "not_found", Message: err.Error()}
	case errors.Is(err, db.ErrNotFound), errors.Is(err, backup.ErrNotFound):
		return http.StatusNotFound, apiError{Code: "not_found",
			Message: "Not found: it does not exist or was removed. Check the name or go back to the list."}
	case errors.Is(err, db.ErrConflict):
		return http.StatusConflict, apiError{Code: "conflict", Message: "It already exists: pick another name."}
	case errors.Is(err, db.ErrBadCredentials):
		return http.StatusUnauthorized, apiError{Code: "unauthorized", Message: handlers.ErrUnauthorized.Message}
	case errors.As(err, &eh):
		switch eh.Code {
		case http.StatusNotFound:
			return eh.Code, apiError{Code: "not_found", Message: "There is no page at this address."}
		case http.StatusMethodNotAllowed:
			return eh.Code, apiError{Code: "method_not_allowed", Message: "This address does not accept this method."}
		case http.StatusRequestEntityTooLarge:
			return eh.Code, apiError{Code: "too_large", Message: "The request is too large."}
		}
		if eh.Code < 500 {
			return eh.Code, apiError{Code: "bad_request", Message: http.StatusText(eh.Code) + "."}
		}
	}
	return http.StatusInternalServerError, apiError{Code: "internal",
		Message: "Something went wrong on the server. The error is in the server log."}
}

// errorHandler is the one place errors become responses: JSON for /api/,
// an error page for browsers (anonymous browsers are sent to sign in).
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := classify(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if status >= 500 {
		s.log.Error("request failed", "request_id", rid, "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		body.Message += " (request id " + rid + ")"
	}
	req := c.Request()
	var werr error
	switch {
	case strings.HasPrefix(req.URL.Path, "/api/"), req.URL.Path == "/metrics":
		if status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="rewind"`)
		}
		if req.Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, map[string]apiError{"error": body})
		}
	case status == http.StatusUnauthorized && handlers.PrincipalOf(c) == nil:
		next := "/"
		if req.Method == http.MethodGet {
			next = req.URL.RequestURI()
		}
		login := "/login?next=" + url.QueryEscape(next)
		if req.Header.Get("HX-Request") == "true" {
			c.Response().Header().Set("HX-Redirect", login)
			werr = c.NoContent(status)
		} else {
			werr = c.Redirect(http.StatusSeeOther, login)
		}
	default:
		p := views.Page{Title: http.StatusText(status), CSRF: handlers.CSRFToken(c)}
		if pr := handlers.PrincipalOf(c); pr != nil {
			p.User = pr.User
		}
		var buf bytes.Buffer
		if rerr := views.ErrorPage(p, status, errorHeading(status), body.Message).Render(req.Context(), &buf); rerr != nil {
			werr = rerr
			break
		}
		werr = c.HTMLBlob(status, buf.Bytes())
	}
	if werr != nil {
		s.log.Error("write error response", "request_id", rid, "err", werr)
	}
}

func errorHeading(status int) string {
	switch status {
	case http.StatusForbidden:
		return "Not allowed"
	case http.StatusNotFound:
		return "Not found"
	case http.StatusUnprocessableEntity:
		return "Invalid input"
	case http.StatusTooManyRequests:
		return "Slow down"
	}
	if status >= 500 {
		return "Server error"
	}
	return http.StatusText(status)
}

// logRequest is the slog line for each request: no query string, since a
// setup link carries its secret there.
func (s *Server) logRequest(c echo.Context, v middleware.RequestLoggerValues) error {
	level := slog.LevelInfo
	switch {
	case v.Status >= 500:
		level = slog.LevelError
	case v.Status >= 400:
		level = slog.LevelWarn
	}
	if !s.log.Enabled(c.Request().Context(), level) {
		return nil
	}
	attrs := []slog.Attr{slog.String("request_id", v.RequestID), slog.String("method", v.Method), slog.String("path", v.URIPath),
		slog.Int("status", v.Status), slog.Duration("latency", v.Latency), slog.String("remote_ip", v.RemoteIP)}
	if p := handlers.PrincipalOf(c); p != nil && p.User != nil {
		attrs = append(attrs, slog.String("user", p.User.Email))
		if p.Token != nil {
			attrs = append(attrs, slog.Int64("token_id", p.Token.ID))
		}
	}
	s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
	return nil
}
