package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind/rewind/db"
)

// shop is the demo project's app: a tiny shop over an environment's SQLite database and uploads mount,
// served behind the environment's request gate, so a newcomer can change data, back up and restore, and see
// the difference in a browser.
type shop struct {
	env     string
	conn    *sql.DB
	uploads string
	gateURL string
}

var shopPage = template.Must(template.New("shop").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo shop · {{.Env}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1f2933}
h1{font-size:1.4rem} table{border-collapse:collapse;width:100%} td,th{padding:.3rem .5rem;border-bottom:1px solid #e4e7eb;text-align:left}
form{display:inline-block;margin:.5rem .5rem .5rem 0} .note{color:#52606d} button{padding:.35rem .8rem}
</style></head><body>
<h1>Demo shop — environment <code>{{.Env}}</code></h1>
<p class="note">This app runs behind Rewind's request gate: during the short pause of a consistent backup or a
restore, requests wait instead of failing. Change the data here, back up or restore in Rewind, and reload.</p>
<form method="post" action="/orders"><input name="customer" placeholder="customer@example.com" required>
<select name="product">{{range .Products}}<option value="{{.ID}}">{{.Name}}</option>{{end}}</select>
<button>Add order</button></form>
<form method="post" action="/orders/clear"><button>Delete every order</button></form>
<form method="post" action="/uploads"><input name="name" placeholder="note.txt" required pattern="[A-Za-z0-9._-]+">
<button>Add a file to uploads</button></form>
<h2>{{len .Orders}} orders</h2>
<table data-testid="orders"><tr><th>#</th><th>Customer</th><th>Product</th><th>Qty</th></tr>
{{range .Orders}}<tr><td>{{.ID}}</td><td>{{.Customer}}</td><td>{{.Product}}</td><td>{{.Quantity}}</td></tr>{{end}}</table>
<h2>Uploads</h2><ul data-testid="uploads">{{range .Files}}<li>{{.}}</li>{{end}}</ul>
</body></html>`))

func (s *shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var err error
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		err = s.show(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		_, err = s.conn.ExecContext(r.Context(), `INSERT INTO orders (product_id, quantity, customer, created_at)
			VALUES (?, 1, ?, ?)`, r.FormValue("product"), r.FormValue("customer"), time.Now().UTC().Format(time.RFC3339))
	case r.Method == http.MethodPost && r.URL.Path == "/orders/clear":
		_, err = s.conn.ExecContext(r.Context(), `DELETE FROM orders`)
	case r.Method == http.MethodPost && r.URL.Path == "/uploads":
		name := filepath.Base(r.FormValue("name"))
		if name == "." || name == "/" || strings.HasPrefix(name, ".") {
			http.Error(w, "bad file name", http.StatusBadRequest)
			return
		}
		err = os.WriteFile(filepath.Join(s.uploads, name), []byte("added from the demo shop at "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodPost {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

type order struct {
	ID, Quantity      int
	Customer, Product string
}

type product struct {
	ID   int
	Name string
}

func (s *shop) show(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	data := struct {
		Env      string
		Orders   []order
		Products []product
		Files    []string
	}{Env: s.env}
	rows, err := s.conn.QueryContext(ctx, `SELECT o.id, o.customer, p.name, o.quantity FROM orders o
		JOIN products p ON p.id = o.product_id ORDER BY o.id DESC`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var o order
		if err := rows.Scan(&o.ID, &o.Customer, &o.Product, &o.Quantity); err != nil {
			rows.Close()
			return err
		}
		data.Orders = append(data.Orders, o)
	}
	rows.Close()
	rows, err = s.conn.QueryContext(ctx, `SELECT id, name FROM products ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var p product
		if err := rows.Scan(&p.ID, &p.Name); err != nil {
			rows.Close()
			return err
		}
		data.Products = append(data.Products, p)
	}
	rows.Close()
	filepath.WalkDir(s.uploads, func(path string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(s.uploads, path)
			data.Files = append(data.Files, filepath.ToSlash(rel))
		}
		return nil
	})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return shopPage.Execute(w, data)
}

// Shops are the running demo apps.
type Shops struct {
	servers []*http.Server
	conns   []*sql.DB
}

// StartShops starts the demo shop of every demo environment on a loopback port and points the
// environment's gate at it (choosing a free gate address the first time). It returns the gates' URLs by
// environment.
func StartShops(ctx context.Context, catalog *db.DB, log *slog.Logger) (*Shops, map[string]string, error) {
	shops := &Shops{}
	urls := map[string]string{}
	for _, de := range Environments() {
		env, err := catalog.FindEnvironmentByName(ctx, de.Name)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			shops.Close()
			return nil, nil, err
		}
		dbSvc, uploads := env.Service("app-db"), env.Service("uploads")
		if dbSvc == nil || uploads == nil {
			continue // the user reshaped the demo environment: leave it alone
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: dbSvc.Path}).EscapedPath()+"?"+q.Encode())
		if err != nil {
			shops.Close()
			return nil, nil, err
		}
		shops.conns = append(shops.conns, conn)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			shops.Close()
			return nil, nil, fmt.Errorf("demo shop %s: %w", de.Name, err)
		}
		srv := &http.Server{Handler: &shop{env: de.Name, conn: conn, uploads: uploads.Path},
			ReadHeaderTimeout: 10 * time.Second}
		shops.servers = append(shops.servers, srv)
		go srv.Serve(ln) //nolint:errcheck
		upstream := "http://" + ln.Addr().String()
		if err := pointGate(ctx, catalog, env, upstream); err != nil {
			log.Warn("demo shop runs without a gate", "environment", de.Name, "err", err)
			urls[de.Name] = upstream
			continue
		}
		urls[de.Name] = "http://" + env.Gate.Listen
	}
	return shops, urls, nil
}

// pointGate gives a demo environment a gate in front of upstream: a free loopback address the first time,
// and the demo shop's new address on every start.
func pointGate(ctx context.Context, catalog *db.DB, env *db.Environment, upstream string) error {
	first := env.Gate.Listen == ""
	if first {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		env.Gate.Listen = ln.Addr().String()
		ln.Close()
	}
	env.Gate.Upstream = upstream
	if err := catalog.UpdateEnvironment(ctx, env); err != nil {
		return fmt.Errorf("point the gate of %s at the demo shop: %w", env.Name, err)
	}
	if !first {
		return nil
	}
	return catalog.CreateActivity(ctx, &db.Activity{Type: "environment.update", Environment: env.Name, Actor: "demo",
		Summary: fmt.Sprintf("Put the demo shop of %s behind a request gate at %s", env.Name, env.Gate.Listen)})
}

// Close stops the demo shops.
func (s *Shops) Close() {
	if s == nil {
		return
	}
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(ctx) //nolint:errcheck
		cancel()
	}
	for _, c := range s.conns {
		c.Close()
	}
}
