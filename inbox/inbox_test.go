package inbox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/inbox"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
	"github.com/bilibridge/bilibridge/testlog"
)

// site is the inbox and the API of one bridge process, over a rig.
type site struct {
	rig *teamtest.Rig
	srv *httptest.Server
}

func newSite(t *testing.T, rig *teamtest.Rig) *site {
	t.Helper()
	proc := rig.Process(teamtest.Options{})
	in := inbox.New(inbox.Config{Sessions: team.NewSessions(rig.Store.Sessions, rig.Members), Members: rig.Members})
	mux := http.NewServeMux()
	mux.Handle(api.Prefix, api.New(api.Config{Members: rig.Members, Sessions: in, Team: proc.Service, Projection: proc.Projection, Stream: rig.Store.Events}))
	mux.Handle("/", in)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &site{rig: rig, srv: srv}
}

// client is a browser-like HTTP client: cookies, no redirects followed.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (s *site) get(t *testing.T, c *http.Client, path string) (int, string, http.Header) {
	t.Helper()
	res, err := c.Get(s.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// postFromAnotherSite posts form to path as a browser does from a page
// of another site (and so without the SameSite=Strict cookie).
func (s *site) postFromAnotherSite(t *testing.T, path, form string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	res, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func (s *site) signIn(t *testing.T, c *http.Client, name, pw string) int {
	t.Helper()
	res, err := c.PostForm(s.srv.URL+"/login", url.Values{"name": {name}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// Until the team has a member the page says how to make one; every page
// carries the security headers.
func TestSetupPageAndHeaders(t *testing.T) {
	s := newSite(t, teamtest.New(t))
	status, body, h := s.get(t, client(t), "/")
	if status != 200 || !strings.Contains(body, "bilibridge member add") {
		t.Fatalf("without members: %d %q", status, body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self';",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	} {
		if !strings.Contains(h.Get(k), want) {
			t.Errorf("%s = %q, want %q in it", k, h.Get(k), want)
		}
	}
	if strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") {
		t.Error("the CSP allows inline code")
	}
	if status, _, _ := s.get(t, client(t), "/static/app.js"); status != 200 {
		t.Errorf("app.js: %d", status)
	}
}

// A session lives in the bucket: another process (and so a restarted one)
// knows it; signing out ends it everywhere.
func TestSessionAcrossProcesses(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	if err := rig.Members.SetPassword(context.Background(), "ana", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	one, two := newSite(t, rig), newSite(t, rig)
	c := client(t)
	if status := one.signIn(t, c, "ana", "correct horse battery"); status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", status)
	}
	// The cookie of one process's server works on the other's.
	u1, _ := url.Parse(one.srv.URL)
	u2, _ := url.Parse(two.srv.URL)
	c.Jar.SetCookies(u2, c.Jar.Cookies(u1))
	status, body, _ := two.get(t, c, "/")
	if status != 200 || !strings.Contains(body, `<meta name="member" content="ana">`) {
		t.Fatalf("the other process does not know the session: %d", status)
	}
	cookie := c.Jar.Cookies(u1)[0]
	csrf := between(body, `name="csrf-token" content="`, `"`)
	res, err := c.PostForm(two.srv.URL+"/logout", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	c.Jar.SetCookies(u1, []*http.Cookie{cookie})
	if _, body, _ := one.get(t, c, "/"); !strings.Contains(body, `action="/login"`) {
		t.Fatal("the session outlived its sign-out on the other process")
	}
}

// The session cookie is HttpOnly and SameSite=Strict, Secure behind HTTPS.
func TestSessionCookie(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	_ = rig.Members.SetPassword(context.Background(), "ana", "correct horse battery")
	s := newSite(t, rig)
	for _, proto := range []string{"", "https"} {
		req, _ := http.NewRequest("POST", s.srv.URL+"/login", strings.NewReader("name=ana&password=correct+horse+battery"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		res, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		set := res.Header.Get("Set-Cookie")
		if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || strings.Contains(set, "Secure") != (proto == "https") {
			t.Errorf("behind %q: Set-Cookie %q", proto, set)
		}
	}
}

// Sign-ins from another site are refused, and failed ones are limited.
func TestSignInGuards(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	_ = rig.Members.SetPassword(context.Background(), "ana", "correct horse battery")
	s := newSite(t, rig)
	if res := s.postFromAnotherSite(t, "/login", "name=ana&password=correct+horse+battery"); res.StatusCode != http.StatusForbidden || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a sign-in from another site: %d", res.StatusCode)
	}
	c := client(t)
	for i := range 5 {
		if status := s.signIn(t, c, "ana", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	// Now even the right password waits.
	if status := s.signIn(t, c, "ana", "correct horse battery"); status != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures: %d, want 429", status)
	}
	// Another member at the same address (a colleague behind the same
	// proxy) is not locked out by them.
	rig.AddMember("bo", team.RoleAgent)
	_ = rig.Members.SetPassword(context.Background(), "bo", "bo's own passphrase")
	if status := s.signIn(t, c, "bo", "bo's own passphrase"); status != http.StatusSeeOther {
		t.Fatalf("another member at the same address: %d, want 303", status)
	}
}

// The API refuses a session's state change without its CSRF token, and a
// session that ended.
func TestAPIWithSession(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	_ = rig.Members.SetPassword(context.Background(), "ana", "correct horse battery")
	s := newSite(t, rig)
	c := client(t)
	s.signIn(t, c, "ana", "correct horse battery")
	_, body, _ := s.get(t, c, "/")
	csrf := between(body, `name="csrf-token" content="`, `"`)
	if status, body, _ := s.get(t, c, "/api/v1/me"); status != 200 || !strings.Contains(body, `"member":"ana"`) {
		t.Fatalf("GET with the session: %d %s", status, body)
	}
	post := func(token string) int {
		req, _ := http.NewRequest("POST", s.srv.URL+"/api/v1/messages/preview", strings.NewReader(`{"text":"x"}`))
		if token != "" {
			req.Header.Set(inbox.CSRFHeader, token)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := post(""); got != http.StatusForbidden {
		t.Errorf("without the CSRF token: %d, want 403", got)
	}
	if got := post(csrf + "x"); got != http.StatusForbidden {
		t.Errorf("with a wrong CSRF token: %d, want 403", got)
	}
	if got := post(csrf); got != http.StatusOK {
		t.Errorf("with the CSRF token: %d, want 200", got)
	}
	if err := rig.Members.Remove(context.Background(), "ana"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for post(csrf) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("a removed member's session still works")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}

// Guesses sent all at once are limited like guesses one after another:
// each counts from the moment it is let through.
func TestConcurrentSignInsAreLimited(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	_ = rig.Members.SetPassword(context.Background(), "ana", "correct horse battery")
	s := newSite(t, rig)
	const guesses = 30
	statuses := make(chan int, guesses)
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Go(func() { statuses <- s.signIn(t, client(t), "ana", fmt.Sprint("guess ", i)) })
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusUnauthorized] > 5 || count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != guesses {
		t.Fatalf("%d guesses at once: %v; want at most 5 checked (401), the rest refused (429)", guesses, count)
	}
	if status := s.signIn(t, client(t), "ana", "correct horse battery"); status != http.StatusTooManyRequests {
		t.Fatalf("the right password after the burst: %d, want 429", status)
	}
}

// A refused sign-in names the member in the log only when it is one: a
// password typed into the name field stays out of the log.
func TestRefusedSignInLogsNoPassword(t *testing.T) {
	rig := teamtest.New(t)
	rig.AddMember("ana", team.RoleAgent)
	log, buf := testlog.New(t)
	in := inbox.New(inbox.Config{Sessions: team.NewSessions(rig.Store.Sessions, rig.Members), Members: rig.Members, Logger: log})
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	s := &site{rig: rig, srv: srv}
	password := team.GeneratePassword()
	for _, name := range []string{password, "ana"} {
		if status := s.signIn(t, client(t), name, "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("sign-in as %q: %d", name, status)
		}
	}
	if strings.Contains(buf.String(), password) {
		t.Errorf("a password typed as the name reached the log:\n%s", buf)
	}
	if len(buf.Grep("member=ana")) == 0 {
		t.Errorf("a refused sign-in of member ana is not logged with the name:\n%s", buf)
	}
}

// Another site cannot sign a member out (its form arrives without the
// SameSite cookie, so without a session whose token could be checked).
func TestCrossSiteSignOutRefused(t *testing.T) {
	s := newSite(t, teamtest.New(t))
	if res := s.postFromAnotherSite(t, "/logout", ""); res.StatusCode != http.StatusForbidden || res.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a sign-out from another site: %d, Set-Cookie %q", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
}

// Before the team has a member, the setup page shows the bridge's status
// (accounts, chats, last errors) only on the bridge's own machine, not
// through a proxy.
func TestSetupPageStatusOnlyLocally(t *testing.T) {
	rig := teamtest.New(t)
	in := inbox.New(inbox.Config{Sessions: team.NewSessions(rig.Store.Sessions, rig.Members), Members: rig.Members,
		Status: func(context.Context) string { return "account 425503913: polling" }})
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		proxied bool
		want    bool
	}{{false, true}, {true, false}} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		if tc.proxied {
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
		}
		res, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := strings.Contains(string(b), "425503913"); got != tc.want {
			t.Errorf("proxied %v: status shown %v, want %v", tc.proxied, got, tc.want)
		}
	}
}
