// Package static holds the dashboard's vendored and hand-written assets,
// embedded into the binary so Rewind needs no CDN. See README.md for the
// origin and license of every file.
package static

import "embed"

// FS holds htmx, the stylesheet, the small behaviour script and the icon.
//
//go:embed htmx.min.js app.css app.js favicon.svg
var FS embed.FS
