package bilitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Server is the fake Bilibili. It is an http.Handler (use New with your own
// http.Server) or a running test server (NewServer). All methods are safe
// for concurrent use.
type Server struct {
	mu sync.Mutex
	ts *httptest.Server

	accounts map[int64]*account
	bySess   map[string]int64
	// sessions holds each live web session's csrf token and refresh
	// state; an account has several while a cookie refresh is unconfirmed.
	sessions map[string]*session
	qrs      map[string]*qrLogin
	refresh  refreshState
	users    map[int64]*User
	groups   map[uint64]*Group
	systems  map[uint64]*System

	faults  map[string][]*faultEntry
	calls   map[string]int
	lastReq map[string]*http.Request

	imgKey, subKey string
	sendInterval   time.Duration
	checkUA        bool
	nextMsgKey     uint64
	nextSeqno      uint64
	rng            *rand.Rand
	logf           func(format string, args ...any)
}

type faultEntry struct {
	n int // remaining; <0 = forever
	f Fault
}

// Fault describes a failure injected with Fail.
type Fault struct {
	// Status is the HTTP status (0 = 200). A status >= 400 without Code or
	// Body is answered with an HTML error page, like Bilibili's gateway.
	Status int
	// Code is a Bilibili error code answered in the JSON envelope with data
	// null (-352 additionally carries data.v_voucher and the
	// x-bili-gaia-vvoucher header).
	Code int
	// Message overrides the envelope message (default: Bilibili's text for Code).
	Message string
	// Delay holds the answer back this long. If the request's context ends
	// first nothing is answered. A fault with only Delay (and Header) answers
	// normally after the delay.
	Delay time.Duration
	// Body is answered verbatim instead (e.g. "{not json"), with Status (or 200).
	Body string
	// Header is added to the response.
	Header http.Header
	// Apply, with Delay, performs the request's action as soon as the request
	// arrives (e.g. send_msg stores the message) and only holds back the
	// answer: a send that timed out on the client but happened. With Code,
	// Status or Body instead, it performs the action and answers with the
	// fault: a busy backend that answers -500 after doing the work.
	Apply bool
	// Talker, when set, limits the fault to requests about this
	// conversation (query talker_id, or msg[receiver_id] of a send); other
	// requests pass it by.
	Talker uint64
}

// Account is a logged-in Bilibili account served by the fake.
type Account struct {
	UID      int64
	Name     string
	Face     string
	SESSDATA string // cookie SESSDATA identifying the account
	BiliJct  string // cookie bili_jct = the csrf token
	// RefreshToken enables the cookie refresh flow for this session.
	RefreshToken string
}

// User is another Bilibili user (a DM peer or fan-group member).
type User struct {
	UID  int64
	Name string
	Face string
	// FollowsAccount false makes the user a stranger: until the user has
	// sent the account a message, the account may send only one message
	// (then 21047).
	FollowsAccount bool
	// Followed = the account follows this user (session is_follow 1,
	// counted in single_unread follow_unread instead of unfollow_unread).
	Followed bool
	Sign     string
	Level    int // user card level; 0 = 5
}

// Group is a fan group (应援团), session_type 2.
type Group struct {
	ID    uint64
	Name  string
	Cover string
}

// System is an official system talker (session_type 1 with
// system_msg_type != 0), e.g. {844424930131966, "UP主小助手", ..., 7}.
type System struct {
	TalkerID      uint64
	Name          string
	PicURL        string
	SystemMsgType int
}

type account struct {
	Account
	convs    map[convKey]*conv
	sent     []Sent
	acks     []Ack
	uploads  []Upload
	lastSend time.Time
	lastTs   int64 // newest session_ts handed out (µs)
}

type convKey struct {
	st     int
	talker uint64
}

type conv struct {
	key       convKey
	msgs      []*StoredMessage // ascending seqno
	ackSeqno  uint64
	ackTs     int64
	sessionTs int64
	groupSeq  uint64
}

const (
	firstMsgKey = 7354295169819585966
	firstSeqno  = 1236306587877408
	maxUint64   = ^uint64(0)
)

// New returns a fake server that is an http.Handler, not listening anywhere.
// Use NewServer in tests.
func New() *Server {
	return &Server{
		accounts:   map[int64]*account{},
		bySess:     map[string]int64{},
		sessions:   map[string]*session{},
		qrs:        map[string]*qrLogin{},
		users:      map[int64]*User{},
		groups:     map[uint64]*Group{},
		systems:    map[uint64]*System{},
		faults:     map[string][]*faultEntry{},
		calls:      map[string]int{},
		lastReq:    map[string]*http.Request{},
		imgKey:     "7cd084941338484aae1ad9425b84077c",
		subKey:     "4932caff0ff746eab6f01bf08b70ac45",
		checkUA:    true,
		nextMsgKey: firstMsgKey,
		nextSeqno:  firstSeqno,
		rng:        rand.New(rand.NewPCG(1, 2)),
	}
}

// NewServer starts the fake on a local httptest.Server; defer Close().
func NewServer() *Server {
	s := New()
	s.ts = httptest.NewServer(s)
	return s
}

// URL is the base URL of a server started with NewServer ("" for New).
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Client returns an http.Client for the test server (http.DefaultClient for New).
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return http.DefaultClient
	}
	return s.ts.Client()
}

// Close stops a server started with NewServer. Connections are closed
// first, so that a request held by a Delay fault ends now rather than
// when its delay runs out.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// SetLogf makes the server log every request (method, path, answered code).
func (s *Server) SetLogf(logf func(format string, args ...any)) {
	s.mu.Lock()
	s.logf = logf
	s.mu.Unlock()
}

// SetUserAgentCheck turns the -412 answer for non-browser User-Agents on
// (the default) or off.
func (s *Server) SetUserAgentCheck(on bool) {
	s.mu.Lock()
	s.checkUA = on
	s.mu.Unlock()
}

// AddAccount adds (or replaces) an account; its login is valid.
func (s *Server) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.accounts[a.UID]; ok {
		delete(s.bySess, old.SESSDATA)
		delete(s.sessions, old.SESSDATA)
		old.Account = a
	} else {
		s.accounts[a.UID] = &account{Account: a, convs: map[convKey]*conv{}}
	}
	s.addSessionLocked(a.UID, a.SESSDATA, a.BiliJct, a.RefreshToken)
}

// SetLoginValid false makes every endpoint answer -101 for the account's
// current sessions (nav: -101 with isLogin false and wbi_img still
// present); true revives them. A new login (QR, refresh) always works.
func (s *Server) SetLoginValid(uid int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		if sess.uid == uid {
			sess.expired = !ok
		}
	}
}

// AddUser adds (or replaces) a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	uu := u
	s.users[u.UID] = &uu
}

// AddGroup adds (or replaces) a fan group the accounts are members of.
func (s *Server) AddGroup(g Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gg := g
	s.groups[g.ID] = &gg
}

// AddSystem adds (or replaces) an official system talker.
func (s *Server) AddSystem(sys System) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := sys
	s.systems[sys.TalkerID] = &ss
}

// Fail makes the next n calls of endpoint (the last path element, e.g.
// "send_msg") answer with f. Faults queue up: after n calls the next Fail's
// fault applies. n < 0 = every call until ClearFaults. Faults apply before
// anything else (auth, User-Agent, WBI).
func (s *Server) Fail(endpoint string, n int, f Fault) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &faultEntry{n: n, f: f})
}

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]*faultEntry{}
}

// Calls counts the requests made to endpoint (faulted ones included).
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// ResetCalls sets every call counter to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

// LastRequestHeader returns a copy of the headers of the last request made
// to endpoint (nil if none), e.g. to assert User-Agent, Referer, Origin.
func (s *Server) LastRequestHeader(endpoint string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.lastReq[endpoint]; r != nil {
		return r.Header.Clone()
	}
	return nil
}

// LastRequestQuery returns the URL query of the last request made to endpoint.
func (s *Server) LastRequestQuery(endpoint string) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.lastReq[endpoint]; r != nil {
		return r.URL.Query()
	}
	return nil
}

// SetSendInterval makes send_msg answer 21020 when two sends of one account
// are closer together than d (0 = off, the default).
func (s *Server) SetSendInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendInterval = d
}

// --- HTTP plumbing ---

// endpoint kinds
var vcEndpoints = map[string]bool{ // api.vc endpoints whose envelope carries "msg"
	"new_sessions": true, "get_sessions": true, "session_detail": true, "single_unread": true,
	"my_group_unread": true, "fetch_session_msgs": true, "update_ack": true,
}

type handlerFunc func(s *Server, w http.ResponseWriter, r *http.Request, ep string)

var routes = map[string]struct {
	method string
	h      handlerFunc
}{
	"/x/web-interface/nav":                        {http.MethodGet, (*Server).handleNav},
	"/session_svr/v1/session_svr/new_sessions":    {http.MethodGet, (*Server).handleNewSessions},
	"/session_svr/v1/session_svr/get_sessions":    {http.MethodGet, (*Server).handleGetSessions},
	"/session_svr/v1/session_svr/session_detail":  {http.MethodGet, (*Server).handleSessionDetail},
	"/session_svr/v1/session_svr/single_unread":   {http.MethodGet, (*Server).handleSingleUnread},
	"/session_svr/v1/session_svr/my_group_unread": {http.MethodGet, (*Server).handleMyGroupUnread},
	"/svr_sync/v1/svr_sync/fetch_session_msgs":    {http.MethodGet, (*Server).handleFetch},
	"/session_svr/v1/session_svr/update_ack":      {http.MethodPost, (*Server).handleUpdateAck},
	"/web_im/v1/web_im/send_msg":                  {http.MethodPost, (*Server).handleSendMsg},
	"/account/v1/user/cards":                      {http.MethodGet, (*Server).handleCards},
	"/x/dynamic/feed/draw/upload_bfs":             {http.MethodPost, (*Server).handleUpload},
	"/x/passport-login/web/qrcode/generate":       {http.MethodGet, (*Server).handleQRGenerate},
	"/x/passport-login/web/qrcode/poll":           {http.MethodGet, (*Server).handleQRPoll},
	"/x/passport-login/web/cookie/info":           {http.MethodGet, (*Server).handleCookieInfo},
	"/x/passport-login/web/cookie/refresh":        {http.MethodPost, (*Server).handleCookieRefresh},
	"/x/passport-login/web/confirm/refresh":       {http.MethodPost, (*Server).handleConfirmRefresh},
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep := path.Base(r.URL.Path)
	if strings.HasPrefix(r.URL.Path, correspondPrefix) {
		ep = "correspond"
	}
	s.mu.Lock()
	s.calls[ep]++
	s.lastReq[ep] = r.Clone(context.Background())
	var fault *Fault
	q := s.faults[ep]
	for i, fe := range q {
		if fe.f.Talker != 0 && fe.f.Talker != requestTalker(r) {
			continue
		}
		f := fe.f
		fault = &f
		if fe.n > 0 {
			fe.n--
			if fe.n == 0 {
				s.faults[ep] = slices.Delete(slices.Clone(q), i, i+1)
			}
		}
		break
	}
	logf := s.logf
	s.mu.Unlock()

	rw := &codeWriter{ResponseWriter: w}
	if logf != nil {
		defer func() { logf("bilifake: %s %s -> http %d code %d", r.Method, r.URL.Path, rw.status(), rw.code) }()
	}
	if fault != nil {
		s.serveFault(rw, r, ep, fault)
		return
	}
	s.serve(rw, r, ep)
}

// requestTalker is the conversation a request is about, or 0.
func requestTalker(r *http.Request) uint64 {
	v := r.URL.Query().Get("talker_id")
	if v == "" && r.Method == http.MethodPost {
		// Reading the form here leaves it parsed for the handler.
		v = r.PostFormValue("msg[receiver_id]")
	}
	id, _ := strconv.ParseUint(v, 10, 64)
	return id
}

func (s *Server) serveFault(w *codeWriter, r *http.Request, ep string, f *Fault) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.Delay > 0 {
		if f.Apply {
			// Perform now, answer later.
			rec := httptest.NewRecorder()
			inner := &codeWriter{ResponseWriter: rec}
			s.serve(inner, r.WithContext(context.WithoutCancel(r.Context())), ep)
			if !sleepCtx(r.Context(), f.Delay) {
				return
			}
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			w.code = inner.code
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		// A request whose body is unread is not watched for its client
		// going away: read it, so that the delay ends with the client.
		_, _ = io.Copy(io.Discard, r.Body)
		if !sleepCtx(r.Context(), f.Delay) {
			return
		}
	} else if f.Apply && (f.Code != 0 || f.Status != 0 || f.Body != "") {
		s.serve(&codeWriter{ResponseWriter: httptest.NewRecorder()}, r.WithContext(context.WithoutCancel(r.Context())), ep)
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case f.Body != "":
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.Body))
	case f.Code != 0:
		var data any
		if f.Code == -352 {
			v := "voucher_" + uuid.NewString()
			w.Header().Set("X-Bili-Gaia-Vvoucher", v)
			data = map[string]string{"v_voucher": v}
		}
		msg := f.Message
		if msg == "" {
			msg = codeMessage(f.Code)
		}
		s.writeEnvStatus(w, ep, status, f.Code, msg, data)
	case status >= 400:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n", text, text)
	default:
		s.serve(w, r, ep)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep string) {
	if strings.HasPrefix(r.URL.Path, correspondPrefix) {
		s.handleCorrespond(w, r)
		return
	}
	rt, ok := routes[r.URL.Path]
	if !ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		s.writeEnvStatus(w, ep, 0, -404, codeMessage(-404), nil)
		return
	}
	if r.Method != rt.method {
		s.writeEnv(w, ep, -405, codeMessage(-405), nil)
		return
	}
	if s.badUA(r) {
		s.writeEnv(w, ep, -412, codeMessage(-412), nil)
		return
	}
	rt.h(s, w, r, ep)
}

func (s *Server) badUA(r *http.Request) bool {
	s.mu.Lock()
	on := s.checkUA
	s.mu.Unlock()
	if !on {
		return false
	}
	ua := strings.ToLower(r.UserAgent())
	if ua == "" {
		return true
	}
	for _, bad := range []string{"go-http-client", "python", "curl"} {
		if strings.Contains(ua, bad) {
			return true
		}
	}
	return false
}

// codeWriter remembers the Bilibili code answered (for logging).
type codeWriter struct {
	http.ResponseWriter
	code   int
	st     int
	header bool
}

func (c *codeWriter) WriteHeader(st int) {
	if !c.header {
		c.header = true
		c.st = st
	}
	c.ResponseWriter.WriteHeader(st)
}

func (c *codeWriter) Write(b []byte) (int, error) {
	if !c.header {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *codeWriter) status() int {
	if c.st == 0 {
		return http.StatusOK
	}
	return c.st
}

type envelope struct {
	Code    int     `json:"code"`
	Msg     *string `json:"msg,omitempty"`
	Message string  `json:"message"`
	TTL     int     `json:"ttl"`
	Data    any     `json:"data"`
}

func (s *Server) writeEnv(w http.ResponseWriter, ep string, code int, message string, data any) {
	s.writeEnvStatus(w, ep, http.StatusOK, code, message, data)
}

// writeEnvStatus writes the envelope; status 0 = headers already written.
func (s *Server) writeEnvStatus(w http.ResponseWriter, ep string, status, code int, message string, data any) {
	if cw, ok := w.(*codeWriter); ok {
		cw.code = code
	}
	env := envelope{Code: code, Message: message, TTL: 1, Data: data}
	if vcEndpoints[ep] {
		m := message
		env.Msg = &m
	}
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
	}
	_, _ = w.Write(b)
}

func (s *Server) writeOK(w http.ResponseWriter, ep string, data any) {
	s.writeEnv(w, ep, 0, "0", data)
}

func (s *Server) writeErr(w http.ResponseWriter, ep string, code int) {
	s.writeEnv(w, ep, code, codeMessage(code), nil)
}

func codeMessage(code int) string {
	switch code {
	case 0:
		return "0"
	case -3:
		return "系统错误"
	case -101:
		return "账号未登录"
	case -111:
		return "csrf 校验失败"
	case -352:
		return "风控校验失败"
	case -400:
		return "请求错误"
	case -403:
		return "访问权限不足"
	case -404:
		return "啥都木有"
	case -405:
		return "请求方法错误"
	case -412:
		return "请求被拦截"
	case -500:
		return "服务器错误"
	case -509, -799:
		return "请求过于频繁，请稍后再试"
	case 2:
		return "参数错误"
	case 10005:
		return "msgkey不存在"
	case 21007:
		return "消息过长，无法发送"
	case 21015:
		return "发送私信需要绑定手机号"
	case 21020:
		return "发送频率过快，请稍后再发"
	case 21026:
		return "不能给自己发送消息哦~"
	case 21028:
		return "系统升级中，暂时无法发送"
	case 21035:
		return "该消息类型不支持发送"
	case 21037:
		return "图片非法"
	case 21041:
		return "消息发送时间超过2分钟，无法撤回"
	case 21042:
		return "消息已撤回"
	case 21046:
		return "发送消息过于频繁，24小时内禁止发送"
	case 21047:
		return "对方主动回复或关注你前，最多发送1条消息"
	case 25003:
		return "由于对方隐私设置，无法发送消息"
	case 25005:
		return "你已将对方拉黑，无法发送消息"
	case 700013:
		return "应援团已解散"
	case 700014:
		return "你已不在该应援团中"
	case 1000004:
		return "入口节点已存在"
	case 4100001:
		return "参数错误"
	}
	return "error"
}

// authAccount resolves the SESSDATA cookie to a valid account; on failure it
// answers -101 and returns nil. Call without s.mu held.
func (s *Server) authAccount(w http.ResponseWriter, r *http.Request, ep string) *account {
	s.mu.Lock()
	a := s.accountForRequest(r)
	s.mu.Unlock()
	if a == nil {
		s.writeErr(w, ep, -101)
	}
	return a
}

// accountForRequest needs s.mu held.
func (s *Server) accountForRequest(r *http.Request) *account {
	c, err := r.Cookie("SESSDATA")
	if err != nil || c.Value == "" {
		return nil
	}
	sess := s.webSessionLocked(c.Value)
	if sess == nil {
		return nil
	}
	a := s.accounts[sess.uid]
	if a == nil || sess.expired {
		return nil
	}
	return a
}

// checkCSRF verifies the csrf fields against bili_jct; both csrf and
// csrf_token when both is true. Answers -111 on failure.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, ep string, a *account, both bool) bool {
	jct := a.BiliJct
	if c, err := r.Cookie("SESSDATA"); err == nil {
		s.mu.Lock()
		if sess := s.webSessionLocked(c.Value); sess != nil {
			jct = sess.jct
		}
		s.mu.Unlock()
	}
	ok := r.PostFormValue("csrf") == jct && jct != ""
	if both && r.PostFormValue("csrf_token") != jct {
		ok = false
	}
	if !ok {
		s.writeErr(w, ep, -111)
	}
	return ok
}
