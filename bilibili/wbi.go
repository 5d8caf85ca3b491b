package bilibili

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// mixinTable is the permutation Bilibili's web client applies to
// img_key+sub_key to derive the signing key (reference §9).
var mixinTable = [...]int{
	46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49,
	33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40,
	61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11,
	36, 20, 34, 44, 52,
}

// MixinKey derives the 32-character WBI signing key from the two keys nav
// publishes.
func MixinKey(imgKey, subKey string) string {
	raw := imgKey + subKey
	var b strings.Builder
	for _, i := range mixinTable {
		if i < len(raw) {
			b.WriteByte(raw[i])
		}
	}
	s := b.String()
	if len(s) > 32 {
		s = s[:32]
	}
	return s
}

// wbiKeyFromURL takes the file name without extension of a wbi_img URL:
// the URLs are disguised keys, never fetched.
func wbiKeyFromURL(u string) string {
	base := path.Base(u)
	return strings.TrimSuffix(base, path.Ext(base))
}

// SignWBI returns the encoded query for params with `wts` and `w_rid`
// added. The returned string is the one that must be sent: the server
// recomputes the signature from the query as received.
func SignWBI(params url.Values, mixinKey string, now time.Time) string {
	signed := make(url.Values, len(params)+2)
	for k, vs := range params {
		if len(vs) > 0 {
			signed.Set(k, stripWBIChars(vs[0]))
		}
	}
	signed.Set("wts", strconv.FormatInt(now.Unix(), 10))
	query := encodeSorted(signed)
	sum := md5.Sum([]byte(query + mixinKey))
	return query + "&w_rid=" + hex.EncodeToString(sum[:])
}

// stripWBIChars removes the characters the web client drops before signing.
func stripWBIChars(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("!'()*", r) {
			return -1
		}
		return r
	}, s)
}

// encodeSorted encodes like JavaScript's encodeURIComponent, keys sorted:
// upper-case hex and %20 for space, which url.Values.Encode does not do.
func encodeSorted(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(encodeURIComponent(k))
		b.WriteByte('=')
		b.WriteString(encodeURIComponent(v.Get(k)))
	}
	return b.String()
}

func encodeURIComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
