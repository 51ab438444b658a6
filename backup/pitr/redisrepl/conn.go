package redisrepl

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// server is a service URL split into what a connection needs: redis://[user:password@]host:port[/db], or
// rediss:// for TLS.
type server struct {
	addr           string
	user, password string
	db             int
	tls            bool
}

func parseURL(raw string) (server, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return server{}, errors.New("url must look like redis://user:password@host:6379/0") // never echo it
	}
	s := server{addr: u.Host, tls: u.Scheme == "rediss"}
	if u.Port() == "" {
		s.addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if s.db, err = strconv.Atoi(p); err != nil {
			return server{}, fmt.Errorf("the URL's path %q is not a database number", p)
		}
	}
	return s, nil
}

// conn is one connection to a Redis server.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// dial connects and authenticates (AUTH user password, or AUTH password for the default user).
func (s server) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	if s.tls {
		host, _, _ := net.SplitHostPort(s.addr)
		nc, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}).
			DialContext(ctx, "tcp", s.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	c := &conn{c: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	if s.password != "" {
		args := []string{"AUTH", s.password}
		if s.user != "" {
			args = []string{"AUTH", s.user, s.password}
		}
		if _, err := c.do(ctx, args...); err != nil {
			c.close()
			return nil, fmt.Errorf("authenticate to %s: %w: check the user and password of the service URL", s.addr, err)
		}
	}
	return c, nil
}

// do sends one command and reads its reply; an error reply is returned as a serverError.
func (c *conn) do(ctx context.Context, args ...string) (any, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(dl)
		defer c.c.SetDeadline(time.Time{}) //nolint:errcheck
	}
	if _, err := c.c.Write(command(args...)); err != nil {
		return nil, fmt.Errorf("send %s: %w", args[0], err)
	}
	v, err := reply(c.r)
	if err != nil {
		return nil, fmt.Errorf("read the reply to %s: %w", args[0], err)
	}
	if e, ok := v.(serverError); ok {
		return nil, e
	}
	return v, nil
}

// str is do for a command answering a string.
func (c *conn) str(ctx context.Context, args ...string) (string, error) {
	v, err := c.do(ctx, args...)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

func (c *conn) close() { _ = c.c.Close() }

// infoField reads one field of an INFO section's text ("redis_version:7.0.15").
func infoField(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			return v
		}
	}
	return ""
}
