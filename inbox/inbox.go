// Package inbox is the team inbox in the browser, served by the bridge
// itself at HTTP_ADDR: a sign-in page, and a page of plain HTML, CSS and
// JavaScript modules (embedded; no build step, nothing from a CDN) that
// works through the HTTP API (package api) with a session cookie and a
// CSRF token, and follows GET /api/v1/events for live updates.
//
// Security: the session cookie is HttpOnly and SameSite=Strict (Secure
// behind HTTPS); every state-changing request carries the session's CSRF
// token in a header; the Content-Security-Policy allows no inline script
// and no other origin but https images; sign-ins are rate-limited; the
// page is off until at least one member exists.
package inbox

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

//go:embed static templates
var files embed.FS

// CookieName is the session cookie.
const CookieName = "bilibridge_session"

// CSRFHeader carries the session's CSRF token on API requests.
const CSRFHeader = "X-CSRF-Token"

// contentSecurityPolicy allows the page's own files only, and images
// from Bilibili (https) and pasted ones (blob:).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Members is what the inbox needs of the team (*team.Members).
type Members interface {
	Any(ctx context.Context) (bool, error)
	Get(ctx context.Context, name string) (*team.Member, error)
}

// Config configures the inbox.
type Config struct {
	Sessions *team.Sessions
	Members  Members
	// Accounts are the Bilibili accounts served, for the page to name.
	Accounts []Account
	// Status, when set, is the bridge's status for people, shown on the
	// page while the team has no member.
	Status func(ctx context.Context) string
	Logger *slog.Logger
	Now    func() time.Time
}

// Account is a Bilibili account the bridge serves.
type Account struct {
	UID  int64
	Name string
}

// Server serves the inbox's pages, and recognises its sessions for the
// API (it is an api.Authenticator).
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	pages   *template.Template
	limiter *limiter
}

// New returns the inbox of cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "inbox"),
		mux:     http.NewServeMux(),
		pages:   template.Must(template.ParseFS(files, "templates/*.html")),
		limiter: newLimiter(5, 30, 5*time.Minute, cfg.Now),
	}
	static, _ := fs.Sub(files, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(http.FileServerFS(static))))
	s.mux.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// No Referer to other sites: hdslb.com serves Bilibili's images only
	// without one.
	h.Set("Referrer-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

// staticFiles lets browsers keep the files for a while (they are embedded:
// they change only with the binary).
func staticFiles(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// home is GET /: the inbox for a signed-in member, the sign-in page, or,
// while the team has no member, how to create one.
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	any, err := s.cfg.Members.Any(r.Context())
	if err != nil {
		s.log.Warn("cannot read the team", "err", err)
		http.Error(w, "The team cannot be read right now; try again.", http.StatusServiceUnavailable)
		return
	}
	if !any {
		page := setupPage{Local: local(r)}
		// The status names the accounts, the chats and the last errors:
		// only for someone on the bridge's own machine.
		if s.cfg.Status != nil && page.Local {
			page.Status = s.cfg.Status(r.Context())
		}
		s.render(w, http.StatusOK, "setup.html", page)
		return
	}
	sess, _, err := s.session(r)
	if err != nil {
		s.render(w, http.StatusOK, "login.html", loginPage{})
		return
	}
	s.render(w, http.StatusOK, "app.html", appPage{Member: sess.Member, Role: string(sess.Role), CSRF: sess.CSRF, Accounts: s.cfg.Accounts})
}

type setupPage struct {
	Status string
	Local  bool // the visitor is on the bridge's machine
}

type loginPage struct {
	Name, Error string
}

type appPage struct {
	Member, Role, CSRF string
	Accounts           []Account
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Warn("rendering a page", "page", name, "err", err)
	}
}

// login is POST /login (form: name, password).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !sameOrigin(r) {
		http.Error(w, "Sign in from the bridge's own page.", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	name, password := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	client := clientIP(r)
	key := strings.ToLower(name)
	if wait := s.limiter.take(client, key); wait > 0 {
		w.Header().Set("Retry-After", strconvSeconds(wait))
		s.render(w, http.StatusTooManyRequests, "login.html", loginPage{Name: name,
			Error: "Too many failed sign-ins. Try again in " + wait.Round(time.Second).String() + "."})
		return
	}
	token, sess, err := s.cfg.Sessions.Start(r.Context(), name, password)
	switch {
	case errors.Is(err, team.ErrBadLogin):
		// The name only when it is a member's: a password typed into the
		// name field must not reach the log.
		if _, merr := s.cfg.Members.Get(r.Context(), name); merr == nil {
			s.log.Info("sign-in refused", "member", name, "client", client)
		} else {
			s.log.Info("sign-in refused", "member", "(not a member)", "client", client)
		}
		s.render(w, http.StatusUnauthorized, "login.html", loginPage{Name: name, Error: "Wrong name or password."})
		return
	case err != nil:
		s.limiter.undecided(client, key)
		s.log.Warn("sign-in failed", "err", err)
		s.render(w, http.StatusServiceUnavailable, "login.html", loginPage{Name: name, Error: "The bridge cannot sign you in right now; try again."})
		return
	}
	s.limiter.succeeded(client, key)
	s.log.Info("signed in", "member", sess.Member, "client", client)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(30 * 24 * time.Hour / time.Second)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout is POST /logout, with the CSRF token as the form field csrf.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	// Another site's form arrives without the (SameSite) cookie, and so
	// without a session to check the token of: refuse it before clearing
	// the cookie.
	if !sameOrigin(r) {
		http.Error(w, "Sign out from the bridge's own page.", http.StatusForbidden)
		return
	}
	sess, token, err := s.session(r)
	if err == nil {
		if !sameToken(r.PostFormValue("csrf"), sess.CSRF) {
			http.Error(w, "The sign-out lacks its CSRF token; reload the page.", http.StatusForbidden)
			return
		}
		if err := s.cfg.Sessions.End(r.Context(), token); err != nil {
			s.log.Warn("signing out", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// Authenticate implements api.Authenticator: the session cookie, and on
// every state-changing request the session's CSRF token.
func (s *Server) Authenticate(r *http.Request) (api.Identity, bool, error) {
	if _, err := r.Cookie(CookieName); err != nil {
		return api.Identity{}, false, nil
	}
	sess, _, err := s.session(r)
	if err != nil {
		return api.Identity{}, true, err
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !sameToken(r.Header.Get(CSRFHeader), sess.CSRF) {
			return api.Identity{}, true, api.ErrForbidden
		}
	}
	return api.Identity{Actor: events.Actor{Member: sess.Member}, Role: sess.Role, Session: true}, true, nil
}

// session is the request's session and its token.
func (s *Server) session(r *http.Request) (*team.Session, string, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, "", err
	}
	sess, err := s.cfg.Sessions.Get(r.Context(), c.Value)
	return sess, c.Value, err
}

// sameOrigin refuses a sign-in posted from another site (login CSRF).
// Browsers say where a request comes from in Sec-Fetch-Site, and older
// ones in Origin; a client that sends neither is no browser of another
// site.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// secure reports whether the page is served over HTTPS (directly, or by
// a proxy that says so).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// local reports whether r comes from the bridge's own machine, not
// through a proxy there (which would make every client look local).
func local(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	ip, err := netip.ParseAddr(clientIP(r))
	return err == nil && ip.IsLoopback()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
