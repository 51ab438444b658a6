package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"sync"
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
	store  *cookieStore
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
	return &sessionManager{store: &cookieStore{CookieStore: store}, secure: secure, now: now}
}

// cookieStore is the cookie store with its decoded cookies kept for a second: checking, decrypting and
// gob-decoding the session cookie was a tenth of a page's CPU, repeated for every request of a browser.
// Only cookies that decoded (so were signed with the session key and not expired) are kept, keyed by the
// whole cookie value; each request gets its own copy of the values.
type cookieStore struct {
	*sessions.CookieStore
	mu      sync.Mutex
	decoded map[string]decodedCookie
}

type decodedCookie struct {
	at     time.Time // monotonic clock
	values map[any]any
}

const (
	decodedCookieTTL = time.Second
	maxDecoded       = 1024 // a full cache starts over
)

// Get returns the request's session, once per request (gorilla's registry).
func (s *cookieStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New decodes the request's cookie, or takes it from the cookies decoded in the last second.
func (s *cookieStore) New(r *http.Request, name string) (*sessions.Session, error) {
	c, err := r.Cookie(name)
	if err != nil {
		return s.CookieStore.New(r, name)
	}
	now := time.Now()
	s.mu.Lock()
	d, ok := s.decoded[c.Value]
	s.mu.Unlock()
	if ok && now.Sub(d.at) < decodedCookieTTL {
		sess := sessions.NewSession(s, name)
		opts := *s.Options
		sess.Options, sess.Values, sess.IsNew = &opts, copyValues(d.values), false
		return sess, nil
	}
	sess, err := s.CookieStore.New(r, name)
	if err == nil && !sess.IsNew {
		s.mu.Lock()
		if s.decoded == nil || len(s.decoded) >= maxDecoded {
			s.decoded = map[string]decodedCookie{}
		}
		s.decoded[c.Value] = decodedCookie{at: now, values: copyValues(sess.Values)}
		s.mu.Unlock()
	}
	return sess, err
}

// copyValues copies session values: strings and numbers, and the flash list.
func copyValues(v map[any]any) map[any]any {
	out := make(map[any]any, len(v))
	for k, x := range v {
		if l, ok := x.([]any); ok {
			x = slices.Clone(l)
		}
		out[k] = x
	}
	return out
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
