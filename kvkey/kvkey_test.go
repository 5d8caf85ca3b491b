package kvkey_test

import (
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/kvkey"
)

func TestToken(t *testing.T) {
	long := strings.Repeat("a", kvkey.MaxPlain+1)
	for _, tc := range []struct {
		in    string
		plain bool
	}{
		{"425503913-7341755312943193481", true},
		{"order_42", true},
		{"", false},
		{"a.b", false},   // a dot would split the key
		{"a*b", false},   // wildcards
		{"a>b", false},   //
		{"h=abc", false}, // cannot pose as a hashed token
		{"订单", false},    // not ASCII
		{"with space", false},
		{long, false},
	} {
		got := kvkey.Token(tc.in)
		if tc.plain != (got == tc.in) {
			t.Errorf("Token(%q) = %q, want plain=%v", tc.in, got, tc.plain)
		}
		if !tc.plain && (!strings.HasPrefix(got, "h=") || len(got) != 2+64) {
			t.Errorf("Token(%q) = %q, want h=<sha256 hex>", tc.in, got)
		}
	}
	if kvkey.Token("a.b") == kvkey.Token("a_b") || kvkey.Token("x y") == kvkey.Token("x_y") {
		t.Error("different parts share a token")
	}
}

func TestJoin(t *testing.T) {
	if got := kvkey.Join("cmd", "425503913", "a.b"); got != "cmd.425503913."+kvkey.Token("a.b") {
		t.Errorf("Join = %q", got)
	}
}
