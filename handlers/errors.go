package handlers

import (
	"net/http"
)

// Error is an error with the HTTP status and the code of the API's error
// shape ({"error":{"code","message"}}). The message is shown to the user as
// is, so it never carries a secret. web's error handler maps it, and db's
// errors, to responses in one place.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrUnauthorized is returned when a request needs a signed-in user or a token.
var ErrUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
	Message: "Sign in, or send a valid API token as \"Authorization: Bearer TOKEN\"."}

// forbidden refuses an action, saying why.
func forbidden(reason string) error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: reason}
}

func badRequest(msg string) error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: msg}
}

// RateLimited is returned when too many sign-in attempts came from one
// address or for one account.
func RateLimited() error {
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: "Too many sign-in attempts. Wait a minute and try again."}
}
