package handlers

import "github.com/labstack/echo/v4"

// isHTMX reports whether htmx made the request (and it is not a boosted
// navigation, which wants a whole page).
func isHTMX(c echo.Context) bool {
	h := c.Request().Header
	return h.Get("HX-Request") == "true" && h.Get("HX-Boosted") != "true"
}

// hxTarget is the id of the element an HTMX request will swap, if any.
func hxTarget(c echo.Context) string {
	if !isHTMX(c) {
		return ""
	}
	return c.Request().Header.Get("HX-Target")
}
