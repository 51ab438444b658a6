package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind/rewind/db"
)

// defaultServerURL is where client commands look for `rewind serve`.
const defaultServerURL = "http://127.0.0.1:8080"

// apiClient talks to the JSON API of a running `rewind serve`.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// apiError is an error response of the JSON API:
// {"error": {"code": "...", "message": "...", "fields": [...]}}.
type apiError struct {
	Status  int             `json:"-"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Fields  []db.FieldError `json:"fields,omitempty"`
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	for _, f := range e.Fields {
		msg += "\n  " + f.Field + ": " + f.Message
	}
	return msg
}

// newAPIClient checks the server URL and token and returns a client.
func newAPIClient(serverURL, token string) (*apiClient, error) {
	if serverURL == "" {
		serverURL = defaultServerURL
	}
	u, err := url.Parse(strings.TrimRight(serverURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q is not an http(s) URL: pass --url http://HOST:PORT or set REWIND_URL", serverURL)
	}
	if token == "" {
		return nil, errors.New("no API token: pass --token or set REWIND_TOKEN (create one with `rewind tokens:create --user EMAIL`)")
	}
	return &apiClient{base: u, token: token, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when non-nil). It returns the HTTP status. Transport failures
// and error statuses come back as errors that say what to do.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base.String() + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, c.statusError(resp.StatusCode, data)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: unexpected answer from %s (is it a rewind server?): %w", method, path, c.base, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *apiClient) transportError(err error) error {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot connect to %s: connection refused: is `rewind serve` running at %s?", c.base, c.base)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot resolve %q: check --url / REWIND_URL", dnsErr.Name)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("request to %s: %w", c.base, err)
	case errors.As(err, &opErr):
		return fmt.Errorf("cannot connect to %s (%v): is `rewind serve` running at %s?", c.base, opErr.Err, c.base)
	}
	return fmt.Errorf("request to %s: %w", c.base, err)
}

func (c *apiClient) statusError(status int, body []byte) error {
	var env struct {
		Error *apiError `json:"error"`
	}
	e := &apiError{}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e = env.Error
	}
	e.Status = status
	switch status {
	case http.StatusUnauthorized:
		return fmt.Errorf("token rejected by %s: create one with `rewind tokens:create --user EMAIL` and pass it as --token or REWIND_TOKEN: %w", c.base, e)
	case http.StatusForbidden:
		return fmt.Errorf("not allowed: %w", e)
	case http.StatusNotFound:
		if e.Message == "" {
			e.Message = "not found on " + c.base.String() + " (is it a rewind server of the same version?)"
		}
	}
	return e
}

// clientFlags are the connection flags every client command takes.
type clientFlags struct {
	url   string
	token string
	json  bool
}

func (f *clientFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.url, "url", defaultServerURL, "URL of the rewind server")
	cmd.Flags().StringVar(&f.token, "token", "", "API token (prefer REWIND_TOKEN, which stays out of the process list)")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print JSON instead of a table")
	}
}

func (f *clientFlags) client() (*apiClient, error) { return newAPIClient(f.url, f.token) }
