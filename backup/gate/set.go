package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
)

// Set runs the gates of all environments: one Gate per environment that has one, keyed by environment name.
// Sync starts, restarts and stops gates as the environments' settings change. Its methods are safe for
// concurrent use.
type Set struct {
	log *slog.Logger
	// Template supplies the timeouts, observer and transport of every gate; Name, Listen and Upstream come
	// from Sync.
	Template Config

	mu    sync.Mutex
	gates map[string]*Gate
}

// NewSet returns an empty set.
func NewSet(template Config, log *slog.Logger) *Set {
	if log == nil {
		log = slog.Default()
	}
	template.Logger = log
	return &Set{log: log, Template: template, gates: map[string]*Gate{}}
}

// Endpoint is one environment's gate configuration.
type Endpoint struct {
	Environment, Listen, Upstream string
}

// Sync makes the running gates match endpoints: a gate whose listen or upstream changed is restarted, a gate
// no longer wanted is closed (waiting requests are served first), a new one is started. Endpoints with an
// empty Listen have no gate. It returns the errors of the gates it could not start, joined; the others run.
func (s *Set) Sync(endpoints []Endpoint) error {
	want := map[string]Endpoint{}
	for _, e := range endpoints {
		if e.Listen != "" && e.Upstream != "" {
			want[e.Environment] = e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, g := range s.gates {
		e, ok := want[name]
		if ok && e.Listen == g.cfg.Listen && e.Upstream == g.cfg.Upstream {
			delete(want, name)
			continue
		}
		if err := g.Close(); err != nil {
			s.log.Warn("close gate", "gate", name, "err", err)
		}
		delete(s.gates, name)
	}
	for name, e := range want {
		cfg := s.Template
		cfg.Name, cfg.Listen, cfg.Upstream = name, e.Listen, e.Upstream
		g, err := New(cfg)
		if err == nil {
			err = g.Start()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("environment %q: %w", name, err))
			continue
		}
		s.log.Info("gate started", "gate", name, "listen", g.Addr().String(), "upstream", e.Upstream)
		s.gates[name] = g
	}
	return errors.Join(errs...)
}

// Gate returns the gate of an environment, or nil.
func (s *Set) Gate(env string) *Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gates[env]
}

// Hold holds the traffic of env's gate and returns the function that releases it. An environment without a
// gate returns a nil release and no error: it pauses through its hooks alone.
func (s *Set) Hold(ctx context.Context, env string) (func(), error) {
	g := s.Gate(env)
	if g == nil {
		return nil, nil
	}
	h, err := g.Hold(ctx)
	if err != nil {
		return nil, err
	}
	return func() {
		if _, err := h.Release(); err != nil {
			s.log.Warn("release gate", "gate", env, "err", err)
		}
	}, nil
}

// WritePrometheus writes the metrics of every gate.
func (s *Set) WritePrometheus(w io.Writer) error {
	s.mu.Lock()
	names := make([]string, 0, len(s.gates))
	for n := range s.gates {
		names = append(names, n)
	}
	sort.Strings(names)
	gates := make([]*Gate, 0, len(names))
	for _, n := range names {
		gates = append(gates, s.gates[n])
	}
	s.mu.Unlock()
	return WritePrometheus(w, gates...)
}

// Close closes every gate.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, g := range s.gates {
		if err := g.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gate %q: %w", name, err))
		}
		delete(s.gates, name)
	}
	return errors.Join(errs...)
}
