package bilibili

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Credentials are the cookies of a logged-in web session, and the token
// that renews them. They are secret: String, GoString and LogValue never
// show a value.
type Credentials struct {
	SESSDATA      string `json:"SESSDATA"`
	BiliJct       string `json:"bili_jct"`
	DedeUserID    string `json:"DedeUserID,omitempty"`
	DedeUserIDMd5 string `json:"DedeUserID__ckMd5,omitempty"`
	SID           string `json:"sid,omitempty"`
	RefreshToken  string `json:"refresh_token,omitempty"`
}

// Valid reports whether the two cookies every call needs are present.
func (c Credentials) Valid() bool { return c.SESSDATA != "" && c.BiliJct != "" }

// UID is the account's mid from the DedeUserID cookie, or 0 when absent.
func (c Credentials) UID() int64 {
	id, err := strconv.ParseInt(c.DedeUserID, 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// String shows which cookies are set, never their values.
func (c Credentials) String() string {
	var set []string
	for _, f := range []struct {
		name, v string
	}{{"SESSDATA", c.SESSDATA}, {"bili_jct", c.BiliJct}, {"DedeUserID", c.DedeUserID}, {"sid", c.SID}, {"refresh_token", c.RefreshToken}} {
		if f.v != "" {
			set = append(set, f.name)
		}
	}
	return "Credentials{" + strings.Join(set, ",") + " set}"
}

// GoString keeps %#v from printing the cookies.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps slog from printing the cookies.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// cookieHeader renders the Cookie header the web client would send.
func (c Credentials) cookieHeader() string {
	var b strings.Builder
	add := func(name, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString((&http.Cookie{Name: name, Value: v}).String())
	}
	add("SESSDATA", c.SESSDATA)
	add("bili_jct", c.BiliJct)
	add("DedeUserID", c.DedeUserID)
	add("DedeUserID__ckMd5", c.DedeUserIDMd5)
	add("sid", c.SID)
	return b.String()
}
