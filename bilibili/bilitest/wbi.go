package bilitest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

var mixinTable = [...]int{
	46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49,
	33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40,
	61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11,
	36, 20, 34, 44, 52,
}

// MixinKey computes WBI's mixin_key from img_key and sub_key (§9 step 2).
func MixinKey(imgKey, subKey string) string {
	raw := imgKey + subKey
	var b strings.Builder
	for _, i := range mixinTable {
		if i < len(raw) {
			b.WriteByte(raw[i])
		}
	}
	out := b.String()
	if len(out) > 32 {
		out = out[:32]
	}
	return out
}

// encodeURIComponent escapes like JavaScript's encodeURIComponent
// (upper-case hex, space = %20).
func encodeURIComponent(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		}
	}
	return b.String()
}

func stripWBIChars(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("!'()*", r) {
			return -1
		}
		return r
	}, s)
}

// wbiSign returns w_rid for params (which must already contain wts; w_rid is ignored).
func wbiSign(params url.Values, mixin string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "w_rid" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, encodeURIComponent(k)+"="+encodeURIComponent(stripWBIChars(params.Get(k))))
	}
	sum := md5.Sum([]byte(strings.Join(parts, "&") + mixin))
	return hex.EncodeToString(sum[:])
}

// SignWBI returns a copy of params with wts (= now) and w_rid added, signed
// with the given keys. Handy for tests that talk to the fake with raw HTTP;
// the fake itself verifies with its own current keys.
func SignWBI(params url.Values, imgKey, subKey string, now time.Time) url.Values {
	out := url.Values{}
	for k, v := range params {
		out[k] = append([]string(nil), v...)
	}
	out.Del("w_rid")
	out.Set("wts", strconv.FormatInt(now.Unix(), 10))
	out.Set("w_rid", wbiSign(out, MixinKey(imgKey, subKey)))
	return out
}

// WBIKeys returns the fake's current img_key and sub_key (as served by nav).
func (s *Server) WBIKeys() (imgKey, subKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imgKey, s.subKey
}

// SetWBIKeys sets img_key and sub_key (32 hex chars each).
func (s *Server) SetWBIKeys(imgKey, subKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imgKey, s.subKey = imgKey, subKey
}

// RotateWBIKeys replaces the keys with random ones: signatures made with the
// old keys then fail (-400 on send_msg, -352 on fetch_session_msgs) until
// the client reads nav again.
func (s *Server) RotateWBIKeys() (imgKey, subKey string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imgKey, s.subKey = hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return s.imgKey, s.subKey
}

// verifyWBI checks wts/w_rid of the request query against the current keys.
func (s *Server) verifyWBI(q url.Values) bool {
	rid, wts := q.Get("w_rid"), q.Get("wts")
	if rid == "" || wts == "" {
		return false
	}
	if _, err := strconv.ParseInt(wts, 10, 64); err != nil {
		return false
	}
	s.mu.Lock()
	mixin := MixinKey(s.imgKey, s.subKey)
	s.mu.Unlock()
	return rid == wbiSign(q, mixin)
}

func (s *Server) wbiImg() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]string{
		"img_url": "https://i0.hdslb.com/bfs/wbi/" + s.imgKey + ".png",
		"sub_url": "https://i0.hdslb.com/bfs/wbi/" + s.subKey + ".png",
	}
}
