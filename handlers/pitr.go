package handlers

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/rewind/rewind/db"
)

// parsePITRForm reads the point-in-time section of the environment form: nil (keep the stored setting) when
// the form does not carry it.
func parsePITRForm(form url.Values) (*db.PITR, error) {
	if form.Get("pitr.form") == "" {
		return nil, nil
	}
	p := &db.PITR{Enabled: form.Get("pitr.enabled") != ""}
	if v := strings.TrimSpace(form.Get("pitr.window_days")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, &db.ValidationError{Errors: []db.FieldError{{Field: "pitr.window_days",
				Message: "window must be a whole number of days, e.g. 7"}}}
		}
		p.WindowDays = n
	}
	return p, nil
}
