package bilibili

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeContent feeds arbitrary contents to every msg_type. Contents
// come from strangers, so whatever arrives must decode to something
// forwardable without panicking.
func FuzzDecodeContent(f *testing.F) {
	for _, c := range contentAllCases(f) {
		f.Add(c.MsgType, c.Content)
		// Each shape under every other decoded type too: mismatches are
		// where decoders tend to break.
		for _, other := range []int{1, 2, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 18, 19, 301, 42} {
			if other != c.MsgType {
				f.Add(other, c.Content)
			}
		}
	}
	for msgType, raws := range contentMalformed {
		for _, raw := range raws {
			f.Add(msgType, raw)
		}
	}
	f.Fuzz(func(t *testing.T, msgType int, raw string) {
		c, err := DecodeContent(msgType, raw)
		if c == nil {
			t.Fatalf("nil Content for (%d, %q)", msgType, raw)
		}
		if err != nil {
			if !errors.Is(err, ErrBadContent) {
				t.Fatalf("error %v does not wrap ErrBadContent", err)
			}
			if u, ok := c.(*UnknownContent); !ok || !u.Malformed || u.Raw != raw || u.MsgType != msgType {
				t.Fatalf("error %v came with %#v", err, c)
			}
		}
		text := c.Text()
		if strings.TrimSpace(text) == "" {
			t.Fatalf("empty Text from %T for (%d, %q)", c, msgType, raw)
		}
		if !utf8.ValidString(text) {
			t.Fatalf("Text is not valid UTF-8 for (%d, %q)", msgType, raw)
		}
		if c.Kind() == "" {
			t.Fatalf("empty Kind from %T", c)
		}
		images, card := c.Images(), c.Card()
		b, merr := json.Marshal(c)
		if merr != nil {
			t.Fatalf("re-encoding %T: %v", c, merr)
		}
		if err != nil {
			return
		}
		if _, unknown := c.(*UnknownContent); unknown {
			return
		}
		// What was decoded once must decode again to the same rendering.
		again, err := DecodeContent(msgType, string(b))
		if err != nil {
			t.Fatalf("re-encoded %s of (%d, %q) does not decode: %v", b, msgType, raw, err)
		}
		if again.Kind() != c.Kind() || again.Text() != text ||
			!reflect.DeepEqual(again.Images(), images) || !reflect.DeepEqual(again.Card(), card) {
			t.Fatalf("round trip of (%d, %q) via %s changed the rendering:\n%q\n%q", msgType, raw, b, text, again.Text())
		}
	})
}
