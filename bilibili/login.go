package bilibili

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// QRCode is a pending web QR login: URL is what the QR code encodes.
type QRCode struct {
	URL string `json:"url"`
	Key string `json:"qrcode_key"`
}

// QR login states (data.code of the poll answer).
const (
	QRWaiting   = CodeQRNotScanned // not scanned yet
	QRScanned   = CodeQRScanned    // scanned, waiting for confirmation on the phone
	QRExpired   = CodeQRExpired    // expired: generate a new code
	QRConfirmed = 0
)

// QRStatus is one poll of a QR login.
type QRStatus struct {
	State   int // QRWaiting, QRScanned, QRExpired or QRConfirmed
	Message string
	// Credentials is set once confirmed: the cookies of the new session
	// and its refresh_token.
	Credentials Credentials
}

// GenerateQR starts a web QR login. The key expires after 180 s.
func (c *Client) GenerateQR(ctx context.Context) (*QRCode, error) {
	var qr QRCode
	err := c.call(ctx, request{name: "qrcode_generate", method: http.MethodGet,
		url: c.endpoints.Passport + "/x/passport-login/web/qrcode/generate"}, &qr)
	if err != nil {
		return nil, err
	}
	if qr.Key == "" || qr.URL == "" {
		return nil, &DecodeError{Endpoint: "qrcode_generate", Err: errors.New("no qrcode_key in the answer")}
	}
	return &qr, nil
}

// PollQR asks how a QR login is going. On confirmation the session's
// cookies come from Set-Cookie, with the crossDomain URL's query as the
// fallback the web client also has.
func (c *Client) PollQR(ctx context.Context, key string) (*QRStatus, error) {
	var data struct {
		URL          string `json:"url"`
		RefreshToken string `json:"refresh_token"`
		Code         int    `json:"code"`
		Message      string `json:"message"`
	}
	var cookies []*http.Cookie
	err := c.call(ctx, request{name: "qrcode_poll", method: http.MethodGet,
		url:   c.endpoints.Passport + "/x/passport-login/web/qrcode/poll",
		query: url.Values{"qrcode_key": {key}}.Encode(), cookies: &cookies}, &data)
	if err != nil {
		return nil, err
	}
	st := &QRStatus{State: data.Code, Message: data.Message}
	if data.Code != QRConfirmed {
		return st, nil
	}
	cr := credentialsFromCookies(cookies)
	if u, err := url.Parse(data.URL); err == nil && !cr.Valid() {
		q := u.Query()
		cr = Credentials{SESSDATA: q.Get("SESSDATA"), BiliJct: q.Get("bili_jct"), DedeUserID: q.Get("DedeUserID"), DedeUserIDMd5: q.Get("DedeUserID__ckMd5")}
	}
	if !cr.Valid() {
		return nil, &DecodeError{Endpoint: "qrcode_poll", Err: errors.New("login confirmed but no SESSDATA/bili_jct in the answer")}
	}
	cr.RefreshToken = data.RefreshToken
	st.Credentials = cr
	return st, nil
}

// credentialsFromCookies picks the session cookies out of Set-Cookie.
func credentialsFromCookies(cookies []*http.Cookie) Credentials {
	var cr Credentials
	for _, ck := range cookies {
		switch ck.Name {
		case "SESSDATA":
			cr.SESSDATA = ck.Value
		case "bili_jct":
			cr.BiliJct = ck.Value
		case "DedeUserID":
			cr.DedeUserID = ck.Value
		case "DedeUserID__ckMd5":
			cr.DedeUserIDMd5 = ck.Value
		case "sid":
			cr.SID = ck.Value
		}
	}
	return cr
}

// CookieInfo asks whether the cookies should be refreshed now.
func (c *Client) CookieInfo(ctx context.Context) (refresh bool, err error) {
	var data struct {
		Refresh   bool  `json:"refresh"`
		Timestamp int64 `json:"timestamp"`
	}
	err = c.call(ctx, request{name: "cookie_info", method: http.MethodGet,
		url:   c.endpoints.Passport + "/x/passport-login/web/cookie/info",
		query: url.Values{"csrf": {c.Credentials().BiliJct}}.Encode()}, &data)
	return data.Refresh, err
}

// bilibiliRefreshKey is the public key Bilibili's web client encrypts the
// correspondPath with (reference §7).
const bilibiliRefreshKey = `-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDLgd2OAkcGVtoE3ThUREbio0Eg
Uc/prcajMKXvkCKFCWhJYJcLkcM2DKKcSeFpD/j6Boy538YXnR6VhcuUJOhH2x71
nzPjfdTcqMz7djHum0qSZA0AyCBDABUqCrfNgCiJ00Ra7GmRj+YCK1NJEuewlb40
JNrRuoEUXpabUzGB8QIDAQAB
-----END PUBLIC KEY-----`

// ParseRefreshKey parses a PEM public key for CorrespondPath.
func ParseRefreshKey(pemText string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("bilibili: refresh key is not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bilibili: refresh key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("bilibili: refresh key is not RSA")
	}
	return rk, nil
}

// DefaultRefreshKey is Bilibili's key for the correspondPath.
func DefaultRefreshKey() *rsa.PublicKey {
	k, err := ParseRefreshKey(bilibiliRefreshKey)
	if err != nil {
		panic(err) // a constant that does not parse is a build bug
	}
	return k
}

// CorrespondPath encrypts "refresh_<ms>" with RSA-OAEP-SHA256, hex-encoded.
func CorrespondPath(key *rsa.PublicKey, now time.Time) (string, error) {
	msg := []byte("refresh_" + strconv.FormatInt(now.UnixMilli(), 10))
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, key, msg, nil)
	if err != nil {
		return "", fmt.Errorf("bilibili: correspondPath: %w", err)
	}
	return hex.EncodeToString(ct), nil
}

var refreshCSRFRe = regexp.MustCompile(`<div id="1-name">\s*([0-9a-fA-F]+)\s*</div>`)

// RefreshCookies runs Bilibili's web cookie refresh up to, not including,
// the confirmation: it returns the new credentials, which the caller must
// persist before calling ConfirmRefresh with the old refresh token (the
// confirmation invalidates the old session, so a crash in between must
// leave the new one on disk). key nil means Bilibili's key.
func (c *Client) RefreshCookies(ctx context.Context, key *rsa.PublicKey) (Credentials, error) {
	old := c.Credentials()
	if old.RefreshToken == "" {
		return Credentials{}, errors.New("bilibili: no refresh_token: log in with `bilibridge login` to enable cookie refresh")
	}
	if key == nil {
		key = DefaultRefreshKey()
	}
	path, err := CorrespondPath(key, c.now())
	if err != nil {
		return Credentials{}, err
	}
	var page []byte
	if err := c.call(ctx, request{name: "correspond", method: http.MethodGet,
		url: c.endpoints.WWW + "/correspond/1/" + path, raw: &page}, nil); err != nil {
		return Credentials{}, err
	}
	m := refreshCSRFRe.FindSubmatch(page)
	if m == nil {
		return Credentials{}, &DecodeError{Endpoint: "correspond", Snippet: snippet(page), Err: errors.New("no refresh_csrf in the page")}
	}
	form := url.Values{"csrf": {old.BiliJct}, "refresh_csrf": {string(m[1])}, "source": {"main_web"}, "refresh_token": {old.RefreshToken}}
	var data struct {
		RefreshToken string `json:"refresh_token"`
	}
	var cookies []*http.Cookie
	if err := c.call(ctx, request{name: "cookie_refresh", method: http.MethodPost,
		url: c.endpoints.Passport + "/x/passport-login/web/cookie/refresh", form: form, cookies: &cookies}, &data); err != nil {
		return Credentials{}, err
	}
	fresh := credentialsFromCookies(cookies)
	if !fresh.Valid() || data.RefreshToken == "" {
		return Credentials{}, &DecodeError{Endpoint: "cookie_refresh", Err: errors.New("no new cookies or refresh_token in the answer")}
	}
	if fresh.DedeUserID == "" {
		fresh.DedeUserID = old.DedeUserID
	}
	fresh.RefreshToken = data.RefreshToken
	return fresh, nil
}

// ConfirmRefresh invalidates the old session once the new credentials are
// safe. The client must already use the new credentials.
func (c *Client) ConfirmRefresh(ctx context.Context, oldRefreshToken string) error {
	form := url.Values{"csrf": {c.Credentials().BiliJct}, "refresh_token": {oldRefreshToken}}
	return c.call(ctx, request{name: "confirm_refresh", method: http.MethodPost,
		url: c.endpoints.Passport + "/x/passport-login/web/confirm/refresh", form: form}, nil)
}
