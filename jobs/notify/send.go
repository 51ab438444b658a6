package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rewind/rewind/db"
)

// send makes one delivery attempt of ev to ch.
func (n *Notifier) send(ctx context.Context, ch *db.NotificationChannel, ev Event) error {
	switch ch.Kind {
	case db.ChannelWebhook:
		return n.post(ctx, ch, ch.URL, "application/json", webhookPayload(ev))
	case db.ChannelSlack:
		return n.post(ctx, ch, ch.URL, "application/json", slackPayload(ev))
	case db.ChannelDiscord:
		return n.post(ctx, ch, ch.URL, "application/json", discordPayload(ev))
	case db.ChannelPing:
		target := ch.URL
		if ev.Failure() {
			u, err := url.Parse(ch.URL)
			if err != nil {
				return fmt.Errorf("ping url cannot be parsed: fix it on the channel")
			}
			u.Path = strings.TrimSuffix(u.Path, "/") + "/fail"
			target = u.String()
		}
		return n.post(ctx, ch, target, "text/plain; charset=utf-8", []byte(plainText(ev)))
	case db.ChannelEmail:
		return n.mail(ctx, ch.SMTP, ev)
	}
	return fmt.Errorf("unknown channel kind %q", ch.Kind)
}

// post sends body to target and wants a 2xx answer. Its errors never quote target, which carries a token.
func (n *Notifier) post(ctx context.Context, ch *db.NotificationChannel, target, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request to %s: check the url", ch.MaskedURL())
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "Rewind-Notifier/1")
	client := n.http
	if client == nil {
		client = &http.Client{Timeout: n.timeout()}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %v", ch.MaskedURL(), err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.Join(strings.Fields(string(excerpt)), " ")
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("%s answered %s%s: %w", ch.MaskedURL(), resp.Status, msg, errStatus)
	}
	return nil
}

// webhookPayload is the generic JSON: the event's fields, plus "source".
func webhookPayload(ev Event) []byte {
	b, _ := json.Marshal(struct {
		Source string `json:"source"`
		Event
	}{"rewind", ev})
	return b
}

// slackPayload is a Slack incoming-webhook message: a text line (shown in notifications) and an attachment.
func slackPayload(ev Event) []byte {
	text := slackEscape(ev.Title)
	if ev.URL != "" {
		text = fmt.Sprintf("<%s|%s>", ev.URL, text)
	}
	type field struct {
		Title string `json:"title"`
		Value string `json:"value"`
		Short bool   `json:"short"`
	}
	fields := []field{{"Event", ev.Kind, true}}
	if ev.Environment != "" {
		fields = append(fields, field{"Environment", ev.Environment, true})
	}
	color := "good"
	if ev.Failure() {
		color = "danger"
	}
	b, _ := json.Marshal(map[string]any{
		"text": text,
		"attachments": []map[string]any{{
			"color": color, "fallback": slackEscape(ev.Title), "text": slackEscape(ev.Detail), "fields": fields,
			"footer": "Rewind", "ts": ev.At.Unix(),
		}},
	})
	return b
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// discordPayload is a Discord webhook message with one embed; mentions in the text are not pinged.
func discordPayload(ev Event) []byte {
	color := 0x2e8b57
	if ev.Failure() {
		color = 0xd0312d
	}
	type field struct {
		Name   string `json:"name"`
		Value  string `json:"value"`
		Inline bool   `json:"inline"`
	}
	fields := []field{{"Event", ev.Kind, true}}
	if ev.Environment != "" {
		fields = append(fields, field{"Environment", ev.Environment, true})
	}
	embed := map[string]any{"title": clip(ev.Title, 256), "description": clip(ev.Detail, 4096), "color": color,
		"timestamp": ev.At.UTC().Format(time.RFC3339), "fields": fields}
	if ev.URL != "" {
		embed["url"] = ev.URL
	}
	b, _ := json.Marshal(map[string]any{
		"username": "Rewind", "content": clip(ev.Title, 2000), "embeds": []any{embed},
		"allowed_mentions": map[string]any{"parse": []string{}},
	})
	return b
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// plainText is the event as lines of text: the body of emails and pings.
func plainText(ev Event) string {
	var b strings.Builder
	b.WriteString(ev.Title + "\n\n")
	fmt.Fprintf(&b, "Event:       %s\n", ev.Kind)
	if ev.Environment != "" {
		fmt.Fprintf(&b, "Environment: %s\n", ev.Environment)
	}
	fmt.Fprintf(&b, "When:        %s\n", ev.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	if ev.Detail != "" {
		fmt.Fprintf(&b, "Details:     %s\n", ev.Detail)
	}
	if ev.URL != "" {
		fmt.Fprintf(&b, "Open:        %s\n", ev.URL)
	}
	return b.String()
}

// mail sends ev as a plain-text email over SMTP, with STARTTLS, implicit TLS or (for a local relay) neither.
// Authentication is only ever sent over TLS, or in clear to a server on this machine (net/smtp's PLAIN rule).
func (n *Notifier) mail(ctx context.Context, s db.SMTPSettings, ev Event) error {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	var conn net.Conn
	var err error
	if s.TLS == db.SMTPTLS {
		d := &tls.Dialer{Config: n.tlsConfig(s.Host)}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		return fmt.Errorf("SMTP server %s: %w", addr, err)
	}
	defer c.Close()
	if s.TLS == db.SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("SMTP server %s does not offer STARTTLS: choose TLS (port 465) or, for a local relay, none", addr)
		}
		if err := c.StartTLS(n.tlsConfig(s.Host)); err != nil {
			return fmt.Errorf("STARTTLS with %s: %w", addr, err)
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("SMTP server %s offers no authentication: clear the username, or use the server's submission port", addr)
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return fmt.Errorf("SMTP login as %s at %s: %w", s.Username, addr, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM %s: %w", s.From, err)
	}
	for _, to := range s.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(message(s, ev, n.now())); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP server %s refused the message: %w", addr, err)
	}
	return c.Quit()
}

// message is the email: headers (the subject encoded, no line breaks from the event) and a quoted-printable body.
func message(s db.SMTPSettings, ev Event, now time.Time) []byte {
	var b bytes.Buffer
	subject := strings.Join(strings.Fields("[Rewind] "+ev.Title), " ")
	id := make([]byte, 12)
	rand.Read(id)
	host := s.Host
	if at := strings.LastIndexByte(s.From, '@'); at >= 0 {
		host = strings.Trim(s.From[at+1:], "<> ")
	}
	fmt.Fprintf(&b, "From: %s\r\n", s.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(s.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), host)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n")
	fmt.Fprintf(&b, "X-Rewind-Event: %s\r\n\r\n", ev.Kind)
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(plainText(ev), "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}
