package bridge_test

import (
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
)

// TestDiscordInbox runs the loop through Discord: a DM becomes a thread
// message posted as the sender, @everyone pings nobody, an allowed member's
// answer in the thread reaches Bilibili and gets ✅, a stranger's does not.
func TestDiscordInbox(t *testing.T) {
	const guild = "700000000000000001"
	fake := bilitest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAccount(bilitest.Account{UID: uid, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
	fake.AddUser(bilitest.User{UID: friend, Name: "friend", Face: "https://i0.hdslb.com/f.jpg", FollowsAccount: true})
	dc := discordtest.NewT(t, "discord-bot-token")
	channel := dc.AddChannel(guild, 0, "bilibili-inbox")

	cfg := testConfig(t, fake, t.TempDir())
	cfg.DiscordToken, cfg.DiscordChannelID, cfg.DiscordAPIURL = "discord-bot-token", channel, dc.URL
	cfg.DiscordAllowedUsers = config.Snowflakes{"800000000000000001"}
	r := startApp(t, bridge.Options{Config: cfg, HTTPClient: fake.Client(), Accounts: []config.Login{defaultLogin}})

	fake.Deliver(uid, bilitest.Message{SessionType: 1, TalkerID: uint64(friend), MsgType: 1, Content: bilitest.TextContent("hi @everyone")})
	var thread string
	bustest.Eventually(t, "the thread and the message", func() bool {
		for _, th := range dc.Threads(channel) {
			for _, m := range dc.Messages(th.ID) {
				if strings.Contains(m.Content, "hi") && m.Username == "friend" {
					thread = th.ID
					if !strings.HasPrefix(string(m.AllowedMentions), `{"parse":[]`) {
						t.Errorf("allowed_mentions %s", m.AllowedMentions)
					}
					return true
				}
			}
		}
		return false
	})
	dc.Dispatch(discordtest.UserMessage{ChannelID: thread, GuildID: guild, AuthorID: "800000000000000999", Content: "not allowed"})
	id := dc.Dispatch(discordtest.UserMessage{ChannelID: thread, GuildID: guild, AuthorID: "800000000000000001", Content: "on it!"})
	bustest.Eventually(t, "the reply on Bilibili and ✅", func() bool {
		reacted := false
		for _, r := range dc.Reactions() {
			if r.MessageID == id && r.Emoji == "✅" {
				reacted = true
			}
		}
		return len(fake.Sent(uid)) == 1 && reacted
	})
	if s := fake.Sent(uid)[0]; !strings.Contains(s.Content, "on it!") || s.ReceiverID != uint64(friend) {
		t.Errorf("Bilibili got %+v", s)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
