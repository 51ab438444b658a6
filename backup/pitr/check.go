package pitr

// Check results.
const (
	CheckOK      = "ok"
	CheckWarning = "warning"
	CheckFailed  = "failed"
)

// CheckResult is one prerequisite of following a server.
type CheckResult struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // ok, warning, failed
	Message string `json:"message"`
}
