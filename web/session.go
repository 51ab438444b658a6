package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"github.com/rewind/rewind/handlers"
	"github.com/rewind/rewind/views"
)

const (
	sessionCookie = "rewind_session"
	sessionMaxAge = 7 * 24 * time.Hour
	keyUserID     = "uid"
	keyCSRF       = "csrf"
	keyLoginAt    = "login_at"
)

// sessionManager keeps the signed-in user, the CSRF token and one-time
// messages in a signed and encrypted cookie (gorilla/sessions). It implements
// handlers.Session.
type sessionManager struct {
	store  *sessions.CookieStore
	secure bool
	now    func() time.Time
}

var _ handlers.Session = (*sessionManager)(nil)

// newSessionManager derives the cookie's signing and encryption keys from
// the session key in secret.key.
func newSessionManager(key []byte, secure bool, now func() time.Time) *sessionManager {
	store := sessions.NewCookieStore(derive(key, "rewind session hash"), derive(key, "rewind session block"))
	store.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(sessionMaxAge.Seconds()),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   secure,
	}
	store.MaxAge(int(sessionMaxAge.Seconds()))
	return &sessionManager{store: store, secure: secure, now: now}
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// get returns the request's session; a cookie that does not decode (old key,
// tampering) yields a fresh, empty session.
func (m *sessionManager) get(c echo.Context) *sessions.Session {
	s, err := m.store.Get(c.Request(), sessionCookie)
	if err != nil {
		s, _ = m.store.New(c.Request(), sessionCookie)
		s.IsNew = true
	}
	return s
}

func (m *sessionManager) save(c echo.Context, s *sessions.Session) error {
	opts := *m.store.Options
	opts.Secure = m.secure || c.Request().TLS != nil
	if s.Options != nil && s.Options.MaxAge < 0 {
		opts.MaxAge = -1
	}
	s.Options = &opts
	return s.Save(c.Request(), c.Response())
}

func (m *sessionManager) userID(c echo.Context) int64 {
	id, _ := m.get(c).Values[keyUserID].(int64)
	return id
}

// csrfToken returns the session's CSRF token, creating the session if needed.
func (m *sessionManager) csrfToken(c echo.Context) (string, error) {
	s := m.get(c)
	if tok, ok := s.Values[keyCSRF].(string); ok && tok != "" {
		return tok, nil
	}
	tok := randomToken()
	s.Values[keyCSRF] = tok
	return tok, m.save(c, s)
}

// LogIn starts a fresh session: new values, new CSRF token.
func (m *sessionManager) LogIn(c echo.Context, userID int64) error {
	s := m.get(c)
	s.Values = map[any]any{keyUserID: userID, keyCSRF: randomToken(), keyLoginAt: m.now().Unix()}
	handlers.SetCSRFToken(c, s.Values[keyCSRF].(string))
	return m.save(c, s)
}

// LogOut drops the session cookie.
func (m *sessionManager) LogOut(c echo.Context) error {
	s := m.get(c)
	s.Values = map[any]any{}
	s.Options = &sessions.Options{MaxAge: -1}
	return m.save(c, s)
}

// Flash queues a message for the next page.
func (m *sessionManager) Flash(c echo.Context, kind, message string) error {
	s := m.get(c)
	s.AddFlash(kind + "\x00" + message)
	return m.save(c, s)
}

// flashes takes the queued messages out of the session.
func (m *sessionManager) flashes(c echo.Context) ([]views.Flash, error) {
	s := m.get(c)
	raw := s.Flashes()
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]views.Flash, 0, len(raw))
	for _, r := range raw {
		str, _ := r.(string)
		kind, msg, ok := strings.Cut(str, "\x00")
		if !ok {
			kind, msg = "info", str
		}
		out = append(out, views.Flash{Kind: kind, Message: msg})
	}
	return out, m.save(c, s)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
