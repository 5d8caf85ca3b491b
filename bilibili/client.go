// Package bilibili is a typed client for the parts of Bilibili's web API a
// DM bridge needs: reading and sending private messages, uploading images,
// user cards, login state and WBI signing.
//
// Every call takes a context and has its own timeout. Every id is an
// integer type: Bilibili's msg_key exceeds 2^53 and min_seqno can be
// 2^64-1. All calls of one Client share one request budget, because
// Bilibili's risk control counts requests per account, not per caller.
package bilibili

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/bilibridge/bilibridge/redact"
)

// Endpoints are the base URLs of the Bilibili hosts the client talks to.
type Endpoints struct {
	API      string // api.vc.bilibili.com: DMs, user cards
	MainAPI  string // api.bilibili.com: nav, upload
	Passport string // passport.bilibili.com: login, cookie refresh
	WWW      string // www.bilibili.com: the refresh_csrf page
}

// DefaultEndpoints are Bilibili's production hosts.
var DefaultEndpoints = Endpoints{
	API:      "https://api.vc.bilibili.com",
	MainAPI:  "https://api.bilibili.com",
	Passport: "https://passport.bilibili.com",
	WWW:      "https://www.bilibili.com",
}

// DefaultUserAgent is a current desktop browser: Bilibili's risk control
// answers -412 to user agents that look like scripts.
const DefaultUserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"

const (
	webOrigin      = "https://message.bilibili.com"
	defaultTimeout = 15 * time.Second
	maxBodyBytes   = 8 << 20
	// wbiKeyMaxAge: the keys rotate about daily.
	wbiKeyMaxAge = 24 * time.Hour
)

// Config configures a Client. The zero value of every field but
// Credentials has a sensible default.
type Config struct {
	Credentials Credentials
	Endpoints   Endpoints
	HTTPClient  *http.Client
	// Timeout bounds each call; default 15s.
	Timeout time.Duration
	// Limiter is the account's request budget, shared by every call.
	// Default: 2 requests/s, burst 4.
	Limiter *rate.Limiter
	// SendLimiter additionally paces send_msg. Default: 1/s, burst 3.
	SendLimiter *rate.Limiter
	UserAgent   string
	Logger      *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Observe, when set, is told about every call: the endpoint's short
	// name, Bilibili's code (or -1 when there was no envelope) and the
	// duration. Metrics hang off it.
	Observe func(endpoint string, code int, took time.Duration)
}

// String never shows the credentials.
func (c Config) String() string {
	return fmt.Sprintf("bilibili.Config{Credentials: %s, Endpoints: %+v}", c.Credentials, c.Endpoints)
}

// GoString keeps %#v from printing the credentials.
func (c Config) GoString() string { return c.String() }

// Client calls Bilibili's web API as one account. It is safe for
// concurrent use.
type Client struct {
	endpoints   Endpoints
	http        *http.Client
	timeout     time.Duration
	limiter     *rate.Limiter
	sendLimiter *rate.Limiter
	userAgent   string
	log         *slog.Logger
	now         func() time.Time
	observe     func(string, int, time.Duration)

	mu      sync.RWMutex
	creds   Credentials
	wbi     string // mixin key
	wbiTime time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		endpoints:   cfg.Endpoints,
		http:        cfg.HTTPClient,
		timeout:     cfg.Timeout,
		limiter:     cfg.Limiter,
		sendLimiter: cfg.SendLimiter,
		userAgent:   cfg.UserAgent,
		log:         cfg.Logger,
		now:         cfg.Now,
		observe:     cfg.Observe,
		creds:       cfg.Credentials,
	}
	def := DefaultEndpoints
	for _, e := range []struct {
		dst *string
		def string
	}{
		{&c.endpoints.API, def.API}, {&c.endpoints.MainAPI, def.MainAPI},
		{&c.endpoints.Passport, def.Passport}, {&c.endpoints.WWW, def.WWW},
	} {
		if *e.dst == "" {
			*e.dst = e.def
		}
		*e.dst = strings.TrimRight(*e.dst, "/")
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(2, 4)
	}
	if c.sendLimiter == nil {
		c.sendLimiter = rate.NewLimiter(1, 3)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.observe == nil {
		c.observe = func(string, int, time.Duration) {}
	}
	return c
}

// String never shows the credentials.
func (c *Client) String() string {
	return fmt.Sprintf("bilibili.Client{uid: %d, api: %s}", c.Credentials().UID(), c.endpoints.API)
}

// GoString keeps %#v from printing the credentials.
func (c *Client) GoString() string { return c.String() }

// Credentials returns the credentials in use.
func (c *Client) Credentials() Credentials {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.creds
}

// SetCredentials swaps the credentials, for example after a cookie refresh
// or a new login. Calls in flight finish with the old ones.
func (c *Client) SetCredentials(cr Credentials) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creds = cr
}

// Endpoints returns the base URLs in use.
func (c *Client) Endpoints() Endpoints { return c.endpoints }

// envelope is the common response wrapper (§1.1).
type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (e *envelope) text() string {
	if e.Message != "" && e.Message != "0" {
		return e.Message
	}
	if e.Msg != "" && e.Msg != "0" {
		return e.Msg
	}
	return "(no message)"
}

// request describes one call.
type request struct {
	name   string // endpoint short name, for errors and metrics
	method string
	url    string // base + path
	query  string // already encoded
	form   url.Values
	body   io.Reader // overrides form
	ctype  string
	// keepData decodes data even when code != 0 (nav carries WBI keys
	// when logged out).
	keepData bool
	// cookies, when set, receives the cookies the response sets (login
	// and refresh hand out the new session this way).
	cookies *[]*http.Cookie
	// raw, when set, receives the body as it is, for HTML pages.
	raw *[]byte
}

// call performs req within the account's budget and decodes data into out.
func (c *Client) call(ctx context.Context, req request, out any) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("bilibili %s: waiting for the request budget: %w", req.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	target := req.url
	if req.query != "" {
		target += "?" + req.query
	}
	var body io.Reader = req.body
	ctype := req.ctype
	if body == nil && req.form != nil {
		body = strings.NewReader(req.form.Encode())
		ctype = "application/x-www-form-urlencoded"
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return fmt.Errorf("bilibili %s: %w", req.name, redact.URLError(err))
	}
	hreq.Header.Set("User-Agent", c.userAgent)
	hreq.Header.Set("Referer", webOrigin+"/")
	hreq.Header.Set("Accept", "application/json, text/plain, */*")
	if req.method == http.MethodPost {
		hreq.Header.Set("Origin", webOrigin)
		hreq.Header.Set("Content-Type", ctype)
	}
	if ck := c.Credentials().cookieHeader(); ck != "" {
		hreq.Header.Set("Cookie", ck)
	}

	start := c.now()
	code := -1
	defer func() { c.observe(req.name, code, c.now().Sub(start)) }()
	resp, err := c.http.Do(hreq)
	if err != nil {
		c.log.DebugContext(ctx, "bilibili call failed", "endpoint", req.name, "err", redact.URLError(err))
		return &TransportError{Endpoint: req.name, Err: redact.URLError(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return &TransportError{Endpoint: req.name, Err: err}
	}
	if req.cookies != nil {
		*req.cookies = resp.Cookies()
	}
	if req.raw != nil && resp.StatusCode == http.StatusOK {
		*req.raw = raw
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		he := &HTTPError{Endpoint: req.name, StatusCode: resp.StatusCode}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return he
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return &DecodeError{Endpoint: req.name, Snippet: req.snippet(raw), Err: err}
	}
	code = env.Code
	c.log.DebugContext(ctx, "bilibili call", "endpoint", req.name, "code", env.Code, "took", c.now().Sub(start))
	if env.Code != CodeOK {
		apiErr := &APIError{Endpoint: req.name, Code: env.Code, Message: env.text()}
		if env.Code == CodeRiskControl {
			var v struct {
				VVoucher string `json:"v_voucher"`
			}
			_ = json.Unmarshal(env.Data, &v) // best effort: data is often null
			apiErr.VVoucher = v.VVoucher
		}
		if !req.keepData || out == nil {
			return apiErr
		}
		if err := decodeData(req.name, env.Data, out); err != nil {
			return errors.Join(apiErr, err)
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := decodeData(req.name, env.Data, out); err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Snippet = req.snippet(env.Data)
		}
		return err
	}
	return nil
}

// snippet is the start of a body for an error message, except for the
// login and refresh answers, which carry cookies and refresh tokens.
func (req request) snippet(b []byte) string {
	if req.cookies != nil {
		return "(withheld: it may hold credentials)"
	}
	return snippet(b)
}

func decodeData(name string, data json.RawMessage, out any) error {
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &DecodeError{Endpoint: name, Snippet: snippet(data), Err: err}
	}
	return nil
}

func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// imQuery is what the web client adds to every api.vc call.
func imQuery(v url.Values) string {
	if v == nil {
		v = url.Values{}
	}
	v.Set("build", "0")
	v.Set("mobi_app", "web")
	return v.Encode()
}

// csrfForm returns a form carrying bili_jct as both csrf and csrf_token,
// as every api.vc POST requires.
func (c *Client) csrfForm() url.Values {
	jct := c.Credentials().BiliJct
	return url.Values{"csrf": {jct}, "csrf_token": {jct}, "build": {"0"}, "mobi_app": {"web"}}
}

// hasMore decodes Bilibili's 0/1 has_more.
type hasMore struct {
	HasMore int `json:"has_more"`
}

// Nav returns who is logged in. With expired cookies it returns the
// logged-out Nav together with an *APIError of code -101.
func (c *Client) Nav(ctx context.Context) (*Nav, error) {
	var nav Nav
	err := c.call(ctx, request{name: "nav", method: http.MethodGet,
		url: c.endpoints.MainAPI + "/x/web-interface/nav", keepData: true}, &nav)
	if nav.WbiImg.ImgURL != "" && nav.WbiImg.SubURL != "" {
		c.mu.Lock()
		c.wbi = MixinKey(wbiKeyFromURL(nav.WbiImg.ImgURL), wbiKeyFromURL(nav.WbiImg.SubURL))
		c.wbiTime = c.now()
		c.mu.Unlock()
	}
	return &nav, err
}

// mixinKey returns the cached WBI key, fetching nav when it is missing or
// a day old.
func (c *Client) mixinKey(ctx context.Context) (string, error) {
	c.mu.RLock()
	key, at := c.wbi, c.wbiTime
	c.mu.RUnlock()
	if key != "" && c.now().Sub(at) < wbiKeyMaxAge {
		return key, nil
	}
	_, err := c.Nav(ctx)
	c.mu.RLock()
	key = c.wbi
	c.mu.RUnlock()
	if key == "" {
		if err == nil {
			err = errors.New("nav returned no wbi_img")
		}
		return "", fmt.Errorf("bilibili: fetching WBI keys: %w", err)
	}
	return key, nil
}

// dropWBIKey forgets the cached key so the next signed call fetches nav.
func (c *Client) dropWBIKey() {
	c.mu.Lock()
	c.wbi = ""
	c.mu.Unlock()
}

// signedCall signs params with WBI and performs req; when Bilibili rejects
// the signature (-352 or -400) it refreshes the keys and tries once more.
func (c *Client) signedCall(ctx context.Context, req request, params url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		key, err := c.mixinKey(ctx)
		if err != nil {
			return err
		}
		req.query = SignWBI(params, key, c.now())
		err = c.call(ctx, req, out)
		code := Code(err)
		if attempt == 0 && (code == CodeRiskControl || code == CodeBadRequest) {
			c.dropWBIKey()
			continue
		}
		return err
	}
}

// NewSessions lists sessions active after beginTS (µs), newest first. It
// is the core polling call: one request when nothing changed.
func (c *Client) NewSessions(ctx context.Context, beginTS int64, size int) (*SessionPage, error) {
	q := url.Values{"begin_ts": {strconv.FormatInt(beginTS, 10)}, "size": {strconv.Itoa(size)}}
	return c.sessions(ctx, "new_sessions", q)
}

// GetSessionsParams selects a page of get_sessions.
type GetSessionsParams struct {
	// SessionType is the list: 4 = all (default), 1 users and system,
	// 3 fan groups, see §2.6.
	SessionType int
	// EndTS pages backwards: sessions before this session_ts (µs).
	EndTS int64
	Size  int
}

// GetSessions lists sessions, newest first.
func (c *Client) GetSessions(ctx context.Context, p GetSessionsParams) (*SessionPage, error) {
	if p.SessionType == 0 {
		p.SessionType = 4
	}
	q := url.Values{"session_type": {strconv.Itoa(p.SessionType)}, "group_fold": {"0"}, "unfollow_fold": {"0"}, "sort_rule": {"2"}}
	if p.Size > 0 {
		q.Set("size", strconv.Itoa(p.Size))
	}
	if p.EndTS > 0 {
		q.Set("end_ts", strconv.FormatInt(p.EndTS, 10))
	}
	return c.sessions(ctx, "get_sessions", q)
}

func (c *Client) sessions(ctx context.Context, name string, q url.Values) (*SessionPage, error) {
	var out struct {
		SessionPage
		hasMore
	}
	err := c.call(ctx, request{name: name, method: http.MethodGet,
		url: c.endpoints.API + "/session_svr/v1/session_svr/" + name, query: imQuery(q)}, &out)
	if err != nil {
		return nil, err
	}
	out.SessionPage.HasMore = out.hasMore.HasMore != 0
	return &out.SessionPage, nil
}

// SessionDetail returns one session. A talker the account never chatted
// with gives an *APIError with CodeNeverChatted.
func (c *Client) SessionDetail(ctx context.Context, sessionType int, talkerID uint64) (*Session, error) {
	q := url.Values{"talker_id": {strconv.FormatUint(talkerID, 10)}, "session_type": {strconv.Itoa(sessionType)}}
	var s *Session
	err := c.call(ctx, request{name: "session_detail", method: http.MethodGet,
		url: c.endpoints.API + "/session_svr/v1/session_svr/session_detail", query: imQuery(q)}, &s)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, &APIError{Endpoint: "session_detail", Code: CodeNeverChatted, Message: "no such session"}
	}
	return s, nil
}

// SingleUnread returns the unread DM counts (fan groups excluded).
func (c *Client) SingleUnread(ctx context.Context) (*Unread, error) {
	var u Unread
	q := url.Values{"unread_type": {"0"}, "show_unfollow_list": {"1"}, "show_dustbin": {"1"}}
	err := c.call(ctx, request{name: "single_unread", method: http.MethodGet,
		url: c.endpoints.API + "/session_svr/v1/session_svr/single_unread", query: imQuery(q)}, &u)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// FetchParams selects messages of one session. Seqno bounds are exclusive;
// zero means unbounded.
type FetchParams struct {
	SessionType int
	TalkerID    uint64
	BeginSeqno  uint64
	EndSeqno    uint64
	// Size must be set: Bilibili returns only system tips for size 0.
	// Default 100, max 2000.
	Size int
}

// FetchSessionMsgs returns messages of a session, newest first. It does
// not mark them read. The call is WBI-signed.
func (c *Client) FetchSessionMsgs(ctx context.Context, p FetchParams) (*MessagePage, error) {
	if p.Size <= 0 {
		p.Size = 100
	}
	q := url.Values{
		"talker_id":        {strconv.FormatUint(p.TalkerID, 10)},
		"session_type":     {strconv.Itoa(p.SessionType)},
		"size":             {strconv.Itoa(p.Size)},
		"sender_device_id": {"1"},
		"build":            {"0"},
		"mobi_app":         {"web"},
	}
	if p.BeginSeqno > 0 {
		q.Set("begin_seqno", strconv.FormatUint(p.BeginSeqno, 10))
	}
	if p.EndSeqno > 0 {
		q.Set("end_seqno", strconv.FormatUint(p.EndSeqno, 10))
	}
	var out struct {
		MessagePage
		hasMore
	}
	err := c.signedCall(ctx, request{name: "fetch_session_msgs", method: http.MethodGet,
		url: c.endpoints.API + "/svr_sync/v1/svr_sync/fetch_session_msgs"}, q, &out)
	if err != nil {
		return nil, err
	}
	out.MessagePage.HasMore = out.hasMore.HasMore != 0
	return &out.MessagePage, nil
}

// UpdateAck marks the session read up to ackSeqno (inclusive); zero means
// everything.
func (c *Client) UpdateAck(ctx context.Context, sessionType int, talkerID, ackSeqno uint64) error {
	form := c.csrfForm()
	form.Set("talker_id", strconv.FormatUint(talkerID, 10))
	form.Set("session_type", strconv.Itoa(sessionType))
	if ackSeqno > 0 {
		form.Set("ack_seqno", strconv.FormatUint(ackSeqno, 10))
	}
	return c.call(ctx, request{name: "update_ack", method: http.MethodPost,
		url: c.endpoints.API + "/session_svr/v1/session_svr/update_ack", form: form}, nil)
}

// Outgoing is a message to send.
type Outgoing struct {
	ReceiverType int // SessionUser or SessionGroup
	ReceiverID   uint64
	MsgType      int    // MsgTypeText, MsgTypeImage or MsgTypeRecall
	Content      string // the JSON content text (a bare msg_key for recalls)
	// DevID identifies the sending device; a random UUID v4 when empty.
	DevID string
}

// MaxContentBytes is the longest msg[content] send_msg accepts.
const MaxContentBytes = 2000

// MaxTextRunes is the longest text one message may carry.
const MaxTextRunes = 500

// SendMsg sends one message. It is WBI-signed and paced by the send
// limiter on top of the account budget.
func (c *Client) SendMsg(ctx context.Context, m Outgoing) (*SendResult, error) {
	uid := c.Credentials().UID()
	if uid == 0 {
		return nil, errors.New("bilibili send_msg: the account uid (DedeUserID) is unknown")
	}
	if len(m.Content) > MaxContentBytes {
		return nil, &APIError{Endpoint: "send_msg", Code: CodeTooLong, Message: fmt.Sprintf("content is %d bytes, the limit is %d", len(m.Content), MaxContentBytes)}
	}
	if err := c.sendLimiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("bilibili send_msg: waiting for the send budget: %w", err)
	}
	devID := m.DevID
	if devID == "" {
		devID = strings.ToUpper(uuid.NewString())
	}
	sender := strconv.FormatInt(uid, 10)
	receiver := strconv.FormatUint(m.ReceiverID, 10)
	form := c.csrfForm()
	form.Set("msg[sender_uid]", sender)
	form.Set("msg[receiver_id]", receiver)
	form.Set("msg[receiver_type]", strconv.Itoa(m.ReceiverType))
	form.Set("msg[msg_type]", strconv.Itoa(m.MsgType))
	form.Set("msg[msg_status]", "0")
	form.Set("msg[dev_id]", devID)
	form.Set("msg[timestamp]", strconv.FormatInt(c.now().Unix(), 10))
	form.Set("msg[new_face_version]", "1")
	form.Set("msg[content]", m.Content)
	form.Set("from_firework", "0")
	params := url.Values{"w_sender_uid": {sender}, "w_receiver_id": {receiver}, "w_dev_id": {devID}}
	var res SendResult
	err := c.signedCall(ctx, request{name: "send_msg", method: http.MethodPost,
		url: c.endpoints.API + "/web_im/v1/web_im/send_msg", form: form}, params, &res)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// EncodeText encodes text as a type-1 content.
func EncodeText(text string) string {
	b, _ := json.Marshal(struct {
		Content string `json:"content"`
	}{text})
	return string(b)
}

// SendText sends a text message. Text longer than MaxTextRunes must be
// split by the caller first (see SplitText).
func (c *Client) SendText(ctx context.Context, sessionType int, to uint64, text string) (*SendResult, error) {
	return c.SendMsg(ctx, Outgoing{ReceiverType: sessionType, ReceiverID: to, MsgType: MsgTypeText, Content: EncodeText(text)})
}

// SendImage sends an image already on Bilibili's image host.
func (c *Client) SendImage(ctx context.Context, sessionType int, to uint64, img UploadedImage, imageType string) (*SendResult, error) {
	b, err := json.Marshal(struct {
		URL       string  `json:"url"`
		Height    int     `json:"height"`
		Width     int     `json:"width"`
		ImageType string  `json:"imageType"`
		Original  int     `json:"original"`
		Size      float64 `json:"size"`
	}{img.URL, img.Height, img.Width, imageType, 1, img.SizeKB})
	if err != nil {
		return nil, err
	}
	return c.SendMsg(ctx, Outgoing{ReceiverType: sessionType, ReceiverID: to, MsgType: MsgTypeImage, Content: string(b)})
}

// Recall withdraws a message the account sent in the last 120 seconds.
func (c *Client) Recall(ctx context.Context, sessionType int, to uint64, msgKey uint64) (*SendResult, error) {
	return c.SendMsg(ctx, Outgoing{ReceiverType: sessionType, ReceiverID: to, MsgType: MsgTypeRecall, Content: strconv.FormatUint(msgKey, 10)})
}

// UploadImage puts an image (jpeg, png or gif) on Bilibili's image host
// with biz=im: DM images uploaded under other biz values stop displaying
// after a while.
func (c *Client) UploadImage(ctx context.Context, filename string, data []byte) (*UploadedImage, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file_up"; filename=%q`, filepath.Base(filename)))
	h.Set("Content-Type", http.DetectContentType(data))
	part, err := w.CreatePart(h)
	if err != nil {
		return nil, err
	}
	if _, err := part.Write(data); err != nil {
		return nil, err
	}
	for k, v := range map[string]string{"biz": "im", "category": "daily", "csrf": c.Credentials().BiliJct} {
		if err := w.WriteField(k, v); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	var img UploadedImage
	err = c.call(ctx, request{name: "upload_bfs", method: http.MethodPost,
		url: c.endpoints.MainAPI + "/x/dynamic/feed/draw/upload_bfs", body: &buf, ctype: w.FormDataContentType()}, &img)
	if err != nil {
		return nil, err
	}
	return &img, nil
}

// UserCards returns names and avatars of users, in batches of 50 (more in
// one call makes Bilibili answer with nothing). Unknown uids are absent.
func (c *Client) UserCards(ctx context.Context, uids []int64) ([]UserCard, error) {
	var all []UserCard
	for start := 0; start < len(uids); start += maxUserCardsPerCall {
		end := min(start+maxUserCardsPerCall, len(uids))
		ids := make([]string, 0, end-start)
		for _, id := range uids[start:end] {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		var cards []UserCard
		err := c.call(ctx, request{name: "cards", method: http.MethodGet,
			url: c.endpoints.API + "/account/v1/user/cards", query: url.Values{"uids": {strings.Join(ids, ",")}}.Encode()}, &cards)
		if err != nil {
			return all, err
		}
		all = append(all, cards...)
	}
	return all, nil
}
