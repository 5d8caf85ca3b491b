package discord_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
)

func TestNewChecksConfig(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	for _, tc := range []struct {
		name string
		mod  func(*discord.Config)
		want string
	}{
		{"no token", func(c *discord.Config) { c.Token = "" }, "token"},
		{"bad channel", func(c *discord.Config) { c.ChannelID = "general" }, "channel"},
		{"no state", func(c *discord.Config) { c.State = nil }, "state"},
		{"no records", func(c *discord.Config) { c.Records = nil }, "records"},
		{"bad user", func(c *discord.Config) { c.AllowedUsers = []string{"@bob"} }, "user"},
		{"bad role", func(c *discord.Config) { c.AllowedRoles = []string{"admins"} }, "role"},
		{"bad API URL", func(c *discord.Config) { c.APIURL = "ftp://x" }, "API URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := discord.Config{Token: botToken, ChannelID: e.channel, State: e.kv, Records: e.records}
			tc.mod(&cfg)
			_, err := discord.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %s", err, tc.want)
			}
			if strings.Contains(err.Error(), botToken) {
				t.Error("token in error")
			}
		})
	}
}

func TestNameAndSubjects(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	if s.Name() != "discord-"+e.channel {
		t.Errorf("Name = %q", s.Name())
	}
	want := []string{"bili.*.msg.>", "bili.*.recall.>", "bili.*.sent.>", "bili.*.account", "bili.*.team.>"}
	if got := s.Subjects(events.Subjects{}); !slices.Equal(got, want) {
		t.Errorf("Subjects = %q, want %q", got, want)
	}
}

// DISCORD_API_URL pointing elsewhere sends every request there, with no
// client of the test's own.
func TestAPIURLRedirectsRequests(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t, func(c *discord.Config) { c.HTTPClient, c.APIURL = nil, e.fake.URL })
	deliver(t, s, message(t, 1, "hi"))
	if len(e.webhookMessages(e.onlyThread(t).ID)) != 1 {
		t.Fatal("message not delivered through APIURL")
	}
}
