package bilitest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// QR login states, as data.code of the poll answer.
const (
	qrWaiting   = 86101
	qrScanned   = 86090
	qrExpired   = 86038
	qrConfirmed = 0
	qrLifetime  = 180 * time.Second
)

const correspondPrefix = "/correspond/1/"

// session is one web login of an account.
type session struct {
	uid          int64
	jct          string
	refreshToken string
	refreshCSRF  string // handed out by the correspond page
	expired      bool   // SetLoginValid(false)
}

type qrLogin struct {
	created time.Time
	state   int
	uid     int64 // who confirmed
	used    bool
}

type refreshState struct {
	key   *rsa.PrivateKey
	needs map[int64]bool
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addSessionLocked registers a web session; needs s.mu.
func (s *Server) addSessionLocked(uid int64, sessdata, jct, refreshToken string) {
	s.bySess[sessdata] = uid
	s.sessions[sessdata] = &session{uid: uid, jct: jct, refreshToken: refreshToken}
}

// webSessionLocked finds the session of a SESSDATA cookie value, which may
// arrive URL-escaped (real values contain %2C); needs s.mu.
func (s *Server) webSessionLocked(v string) *session {
	if sess, ok := s.sessions[v]; ok {
		return sess
	}
	if u, err := url.QueryUnescape(v); err == nil {
		return s.sessions[u]
	}
	return nil
}

// QRKeys returns the keys of QR logins that are neither expired nor used.
func (s *Server) QRKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, q := range s.qrs {
		if !q.used && q.state != qrExpired && time.Since(q.created) < qrLifetime {
			keys = append(keys, k)
		}
	}
	return keys
}

// ScanQR marks a QR login scanned on the phone.
func (s *Server) ScanQR(key string) { s.setQR(key, qrScanned, 0) }

// ConfirmQR confirms a QR login as account uid: the next poll logs in.
func (s *Server) ConfirmQR(key string, uid int64) { s.setQR(key, qrConfirmed, uid) }

// ExpireQR expires a QR login, as 180 s would.
func (s *Server) ExpireQR(key string) { s.setQR(key, qrExpired, 0) }

func (s *Server) setQR(key string, state int, uid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.qrs[key]; q != nil {
		q.state, q.uid = state, uid
	}
}

func (s *Server) handleQRGenerate(w http.ResponseWriter, r *http.Request, ep string) {
	key := randomHex(16)
	s.mu.Lock()
	s.qrs[key] = &qrLogin{created: time.Now(), state: qrWaiting}
	s.mu.Unlock()
	s.writeOK(w, ep, map[string]string{
		"url":        "https://passport.bilibili.com/h5-app/passport/login/scan?navhide=1&qrcode_key=" + key + "&from=",
		"qrcode_key": key,
	})
}

func (s *Server) handleQRPoll(w http.ResponseWriter, r *http.Request, ep string) {
	key := r.URL.Query().Get("qrcode_key")
	s.mu.Lock()
	q := s.qrs[key]
	state := qrExpired
	var cookies []*http.Cookie
	var token string
	if q != nil && !q.used {
		state = q.state
		if time.Since(q.created) >= qrLifetime {
			state = qrExpired
		}
		if state == qrConfirmed && s.accounts[q.uid] != nil {
			q.used = true
			cookies, token = s.newSessionLocked(q.uid)
		}
	}
	s.mu.Unlock()
	data := map[string]any{"url": "", "refresh_token": "", "timestamp": 0, "code": state, "message": qrMessage(state)}
	if state == qrConfirmed {
		for _, c := range cookies {
			http.SetCookie(w, c)
		}
		v := url.Values{}
		for _, c := range cookies {
			v.Set(c.Name, c.Value)
		}
		data["url"] = "https://passport.biligame.com/crossDomain?" + v.Encode() + "&gourl=https%3A%2F%2Fpassport.bilibili.com"
		data["refresh_token"] = token
		data["timestamp"] = time.Now().UnixMilli()
	}
	s.writeOK(w, ep, data)
}

func qrMessage(state int) string {
	switch state {
	case qrWaiting:
		return "未扫码"
	case qrScanned:
		return "二维码已扫码未确认"
	case qrExpired:
		return "二维码已失效"
	}
	return ""
}

// newSessionLocked opens a new web session for uid and returns the
// cookies Bilibili would set and its refresh token; needs s.mu.
func (s *Server) newSessionLocked(uid int64) ([]*http.Cookie, string) {
	sessdata := randomHex(8) + "%2C" + strconv.FormatInt(time.Now().Add(180*24*time.Hour).Unix(), 10) + "%2C" + randomHex(4) + "*31"
	jct, token := randomHex(16), randomHex(16)
	s.addSessionLocked(uid, sessdata, jct, token)
	uidText := strconv.FormatInt(uid, 10)
	mk := func(name, v string, httpOnly bool) *http.Cookie {
		return &http.Cookie{Name: name, Value: v, Path: "/", Domain: "bilibili.com", MaxAge: 15552000, HttpOnly: httpOnly, Secure: httpOnly}
	}
	return []*http.Cookie{
		mk("SESSDATA", sessdata, true), mk("bili_jct", jct, false), mk("DedeUserID", uidText, false),
		mk("DedeUserID__ckMd5", randomHex(8), false), mk("sid", randomHex(4), false),
	}, token
}

// Sessions counts the live web sessions of uid (one, plus one while a
// refresh is unconfirmed).
func (s *Server) Sessions(uid int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if sess.uid == uid {
			n++
		}
	}
	return n
}

// SetNeedsRefresh makes cookie/info answer refresh=true for uid.
func (s *Server) SetNeedsRefresh(uid int64, needs bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refresh.needs == nil {
		s.refresh.needs = map[int64]bool{}
	}
	s.refresh.needs[uid] = needs
}

// RefreshKey returns the public half of the fake's correspondPath key (the
// real Bilibili has its own; clients under test must be given this one).
func (s *Server) RefreshKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refresh.key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		s.refresh.key = k
	}
	return &s.refresh.key.PublicKey
}

func (s *Server) handleCookieInfo(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	s.mu.Lock()
	needs := s.refresh.needs[a.UID]
	s.mu.Unlock()
	s.writeOK(w, ep, map[string]any{"refresh": needs, "timestamp": time.Now().UnixMilli()})
}

// handleCorrespond decrypts the correspondPath, checks its timestamp and
// answers the page holding refresh_csrf; a wrong path gets a 404 page.
func (s *Server) handleCorrespond(w http.ResponseWriter, r *http.Request) {
	notFound := func() {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<!DOCTYPE html><html><body><h1>404</h1></body></html>")
	}
	s.RefreshKey() // make sure a key exists
	ct, err := hex.DecodeString(strings.TrimPrefix(r.URL.Path, correspondPrefix))
	if err != nil {
		notFound()
		return
	}
	s.mu.Lock()
	key := s.refresh.key
	s.mu.Unlock()
	pt, err := rsa.DecryptOAEP(sha256.New(), nil, key, ct, nil)
	if err != nil || !strings.HasPrefix(string(pt), "refresh_") {
		notFound()
		return
	}
	ms, err := strconv.ParseInt(strings.TrimPrefix(string(pt), "refresh_"), 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > 5*time.Minute {
		notFound()
		return
	}
	c, err := r.Cookie("SESSDATA")
	s.mu.Lock()
	var sess *session
	if err == nil {
		sess = s.webSessionLocked(c.Value)
	}
	token := ""
	if sess != nil {
		sess.refreshCSRF = randomHex(16)
		token = sess.refreshCSRF
	}
	s.mu.Unlock()
	if sess == nil {
		notFound()
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>bilibili</title></head><body><div id="1-name">%s</div><div id="1-desc"></div></body></html>`, token)
}

func (s *Server) handleCookieRefresh(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil || !s.checkCSRF(w, r, ep, a, false) {
		return
	}
	c, _ := r.Cookie("SESSDATA")
	s.mu.Lock()
	sess := s.webSessionLocked(c.Value)
	ok := sess != nil && sess.refreshCSRF != "" && r.PostFormValue("refresh_csrf") == sess.refreshCSRF &&
		sess.refreshToken != "" && r.PostFormValue("refresh_token") == sess.refreshToken && r.PostFormValue("source") == "main_web"
	var cookies []*http.Cookie
	var token string
	if ok {
		sess.refreshCSRF = ""
		cookies, token = s.newSessionLocked(a.UID)
	}
	s.mu.Unlock()
	if !ok {
		s.writeEnv(w, ep, 86095, "refresh_csrf 错误或 refresh_token 与 cookie 不匹配", nil)
		return
	}
	for _, ck := range cookies {
		http.SetCookie(w, ck)
	}
	s.writeOK(w, ep, map[string]any{"status": 0, "message": "", "refresh_token": token})
}

// handleConfirmRefresh ends the old session of a refresh: it is called
// with the new cookies and the old refresh token.
func (s *Server) handleConfirmRefresh(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil || !s.checkCSRF(w, r, ep, a, false) {
		return
	}
	old := r.PostFormValue("refresh_token")
	s.mu.Lock()
	found := false
	for sd, sess := range s.sessions {
		if sess.uid == a.UID && sess.refreshToken == old && old != "" {
			delete(s.sessions, sd)
			delete(s.bySess, sd)
			found = true
		}
	}
	if found && s.refresh.needs != nil {
		s.refresh.needs[a.UID] = false
	}
	s.mu.Unlock()
	if !found {
		s.writeErr(w, ep, -400)
		return
	}
	s.writeOK(w, ep, nil)
}
