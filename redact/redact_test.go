package redact_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/redact"
)

func TestScrubber(t *testing.T) {
	s := redact.New("123456:ABC-bot-token", "", "ab") // empty and short ones are ignored
	s.Add("hooktoken")
	for _, tc := range []struct{ in, want string }{
		{"GET https://api.telegram.org/bot123456:ABC-bot-token/getMe: EOF", "GET https://api.telegram.org/bot[redacted]/getMe: EOF"},
		{"https://discord.com/api/webhooks/1/hooktoken?wait=true", "https://discord.com/api/webhooks/1/[redacted]?wait=true"},
		{"nothing secret about ab", "nothing secret about ab"},
	} {
		if got := s.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var zero redact.Scrubber
	if got := zero.String("x"); got != "x" {
		t.Errorf("the zero Scrubber changed text: %q", got)
	}
}

func TestErrorKeepsTheChain(t *testing.T) {
	s := redact.New("sekrit-token")
	err := s.Error(fmt.Errorf("calling /botsekrit-token/x: %w", context.DeadlineExceeded))
	if strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("secret in %q", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the scrubbed error lost its cause")
	}
	if s.Error(nil) != nil {
		t.Fatal("Error(nil) is not nil")
	}
}

func TestURLHelpers(t *testing.T) {
	u, _ := url.Parse("https://user:pass-word@hooks.example.com/in?token=s%2Fecret&x=1")
	if got, want := redact.URL(u), "https://hooks.example.com/in?[redacted]"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	s := redact.New(redact.URLSecrets(u)...)
	msg := s.String("POST https://hooks.example.com/in?token=s%2Fecret&x=1 said: bad token s/ecret, pass-word")
	for _, secret := range []string{"s%2Fecret", "s/ecret", "pass-word"} {
		if strings.Contains(msg, secret) {
			t.Errorf("%q survived: %q", secret, msg)
		}
	}
	err := redact.URLError(&url.Error{Op: "Get", URL: "https://x.example/cookie/info?csrf=abcdef", Err: errors.New("timeout")})
	if strings.Contains(err.Error(), "abcdef") {
		t.Errorf("URLError kept the query: %q", err)
	}
}
