package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc reports whether the bridge can do its job; a non-nil error
// says why not.
type ReadyFunc func() error

// HTTPServer serves /healthz, /readyz, /metrics and, when mounted, the API.
type HTTPServer struct {
	srv *http.Server
	mux *http.ServeMux
	log *slog.Logger
	ln  net.Listener
}

// NewHTTPServer returns a server on addr. gather is the metrics registry.
func NewHTTPServer(addr string, gather prometheus.Gatherer, ready ReadyFunc, log *slog.Logger) *HTTPServer {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	return &HTTPServer{
		mux: mux,
		log: log,
		srv: &http.Server{
			Addr:              addr,
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
	}
}

// Handle mounts h on pattern (for the API).
func (s *HTTPServer) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler is the server's handler, for tests.
func (s *HTTPServer) Handler() http.Handler { return s.mux }

// Listen binds the address, so that a busy port fails the start rather
// than a goroutine later.
func (s *HTTPServer) Listen() error {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", s.srv.Addr, err)
	}
	s.ln = ln
	s.log.Info("HTTP listening", "addr", ln.Addr().String())
	return nil
}

// Close releases the listener of a server that will not Run.
func (s *HTTPServer) Close() error {
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}

// Addr is the bound address, after Listen.
func (s *HTTPServer) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully. It listens first
// if Listen was not called.
func (s *HTTPServer) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ln := s.ln
	// Requests run under base, which ends when shutdown begins: a request
	// waiting for an outcome (?wait=true) answers with what it has (202,
	// queued) instead of holding the shutdown up past its grace.
	base, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	s.srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stopRequests()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
