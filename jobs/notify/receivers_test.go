package notify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs/notify"
)

// testKey is the catalog key of the tests' catalogs.
var testKey = bytes.Repeat([]byte{7}, db.KeySize)

func openCatalog(t testing.TB) *db.DB {
	t.Helper()
	c, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "rewind.db"), testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request is one request a receiver got.
type request struct {
	Method, Path, ContentType string
	Body                      []byte
}

// receiver is a local HTTP server that records what it receives and answers with the statuses it is told, one
// per request (the last one repeats).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []request
	statuses []int
	delay    time.Duration
}

func newReceiver(t testing.TB, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.Method, req.URL.Path, req.Header.Get("Content-Type"), body})
		status, delay := http.StatusOK, r.delay
		if n := len(r.got); len(r.statuses) > 0 {
			status = r.statuses[min(n, len(r.statuses))-1]
		}
		r.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(status)
		if status >= 300 {
			// A receiver that echoes the path: the token must still not reach the delivery log.
			io.WriteString(w, "no such hook "+req.URL.Path)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// mail is one message the SMTP server accepted.
type mail struct {
	From, User, Password string
	To                   []string
	Data                 []byte
}

// smtpServer is a local SMTP server (go-smtp) with STARTTLS and PLAIN authentication.
type smtpServer struct {
	Addr string
	Cert *x509.Certificate
	mu   sync.Mutex
	got  []mail
}

func newSMTPServer(t *testing.T, user, password string) *smtpServer {
	t.Helper()
	cert, leaf := selfSigned(t)
	s := &smtpServer{Cert: leaf}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s, user: user, password: password}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.AllowInsecureAuth = false // AUTH only after STARTTLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpServer) mails() []mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail(nil), s.got...)
}

type smtpSession struct {
	srv            *smtpServer
	user, password string
	authed         string
	m              mail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.user || password != s.password {
			return errors.New("invalid username or password")
		}
		s.authed, s.m.User, s.m.Password = username, username, password
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.authed == "" {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.m.From = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.To = append(s.m.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.Data = b
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.m)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.m = mail{User: s.m.User, Password: s.m.Password} }
func (s *smtpSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned(t *testing.T) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rewind test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// newNotifier starts a notifier over catalog with quick retries; logs go to the returned buffer.
func newNotifier(t testing.TB, catalog *db.DB, roots ...*x509.Certificate) (*notify.Notifier, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	n := &notify.Notifier{Store: catalog, BaseURL: "http://rewind.test:8080", Backoff: 20 * time.Millisecond,
		Timeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(logs, nil))}
	if len(roots) > 0 {
		pool := x509.NewCertPool()
		for _, c := range roots {
			pool.AddCert(c)
		}
		n.TLS = &tls.Config{RootCAs: pool}
	}
	n.Start()
	t.Cleanup(n.Close)
	return n, logs
}

// syncBuffer is a bytes.Buffer safe for the notifier's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitDeliveries waits until the delivery log holds want attempts whose last one is final (not retrying), and
// returns them oldest first.
func waitDeliveries(t *testing.T, catalog *db.DB, channelID int64, want int) []*db.NotificationDelivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := catalog.FindNotificationDeliveries(context.Background(), channelID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) >= want && ds[0].Status != db.DeliveryRetrying {
			for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
				ds[i], ds[j] = ds[j], ds[i]
			}
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %d: %d deliveries after 30 s, want %d", channelID, len(ds), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
