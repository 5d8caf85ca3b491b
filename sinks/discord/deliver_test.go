package discord_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/discord/discordtest"
)

const webhookRoute = "POST /api/v9/webhooks/{id}/{token}"

func TestThreadCreatedAndReusedAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  int
	}{{"text channel", discordtest.TypeText}, {"forum channel", discordtest.TypeForum}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.typ)
			deliver(t, e.sink(t), message(t, 1001, "first"))
			th := e.onlyThread(t)
			if want := "Alice · " + itoa(talker); th.Name != want {
				t.Errorf("thread name = %q, want %q", th.Name, want)
			}
			// A new Sink on the same KV is a restart.
			s2 := e.sink(t)
			deliver(t, s2, message(t, 1002, "second"))
			if got := e.onlyThread(t); got.ID != th.ID {
				t.Fatalf("after restart the message went to thread %s, want %s", got.ID, th.ID)
			}
			msgs := e.webhookMessages(th.ID)
			if len(msgs) != 2 || msgs[0].Content != "first" || msgs[1].Content != "second" {
				t.Fatalf("thread messages = %+v", msgs)
			}
			if hooks := e.fake.Webhooks(e.channel); len(hooks) != 1 || hooks[0].Name != discord.WebhookName {
				t.Fatalf("webhooks = %+v, want the one bilibridge webhook", hooks)
			}
			if tc.typ == discordtest.TypeForum {
				all := e.fake.Messages(th.ID)
				if all[0].WebhookID != "" || !strings.Contains(all[0].Content, "Bilibili conversation with Alice") {
					t.Errorf("forum post starter = %+v", all[0])
				}
			}
		})
	}
}

func TestWebhookReusedWhenKVIsEmpty(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	deliver(t, e.sink(t), message(t, 1001, "first"))
	_ = e.kv.Purge(t.Context(), "dc.webhook."+e.channel)
	deliver(t, e.sink(t), message(t, 1002, "second"))
	if hooks := e.fake.Webhooks(e.channel); len(hooks) != 1 {
		t.Fatalf("webhooks = %+v, want the existing one reused", hooks)
	}
}

func TestRendering(t *testing.T) {
	long := strings.Repeat("abcdefghi\n", 450) // 4500 characters
	for _, tc := range []struct {
		name  string
		ev    func(t *testing.T) events.Event
		check func(t *testing.T, msgs []discordtest.Message)
	}{
		{"sender name and avatar, no mentions", func(t *testing.T) events.Event {
			return message(t, 1, "@everyone @here <@&123> hi")
		}, func(t *testing.T, msgs []discordtest.Message) {
			m := msgs[0]
			if m.Username != "Alice" || m.AvatarURL != "https://i0.hdslb.com/face/alice.jpg" {
				t.Errorf("username %q avatar %q", m.Username, m.AvatarURL)
			}
			if !noPings(m.AllowedMentions) {
				t.Errorf("allowed_mentions = %s, want parse: []", m.AllowedMentions)
			}
			if !strings.Contains(m.Content, "@everyone") {
				t.Errorf("content = %q", m.Content)
			}
		}},
		{"card as embed", func(t *testing.T) events.Event {
			return message(t, 2, "[notice] x", func(d *events.MessageData) {
				d.Message.Kind = events.KindNotice
				d.Message.Card = &events.Card{Title: "直播开始提醒", Description: "快来围观吧~", URL: "https://live.bilibili.com/1",
					Cover:   "//i0.hdslb.com/cover.jpg",
					Buttons: []events.Button{{Text: "进入直播间", URL: "https://live.bilibili.com/1"}},
					Fields:  []events.CardField{{Title: "UP主", Value: "someone"}}}
			})
		}, func(t *testing.T, msgs []discordtest.Message) {
			if len(msgs) != 1 || len(msgs[0].Embeds) != 1 {
				t.Fatalf("messages = %+v", msgs)
			}
			e := msgs[0].Embeds[0]
			if e.Title != "直播开始提醒" || e.URL != "https://live.bilibili.com/1" || e.Description == "" ||
				e.Thumbnail == nil || e.Thumbnail.URL != "https://i0.hdslb.com/cover.jpg" {
				t.Errorf("embed = %+v", e)
			}
			if len(e.Fields) != 2 || e.Fields[0].Name != "UP主" || !strings.Contains(e.Fields[1].Value, "](https://live.bilibili.com/1)") {
				t.Errorf("fields = %+v", e.Fields)
			}
			if !noPings(msgs[0].AllowedMentions) {
				t.Errorf("allowed_mentions = %s", msgs[0].AllowedMentions)
			}
		}},
		{"image as image embed", func(t *testing.T) events.Event {
			return message(t, 3, "[image]", func(d *events.MessageData) {
				d.Message.Kind = events.KindImage
				d.Message.Images = []events.Image{{URL: "https://message.biliimg.com/a.jpg"}}
			})
		}, func(t *testing.T, msgs []discordtest.Message) {
			if len(msgs) != 1 || len(msgs[0].Embeds) != 1 || msgs[0].Embeds[0].Image == nil || msgs[0].Embeds[0].Image.URL != "https://message.biliimg.com/a.jpg" {
				t.Fatalf("messages = %+v", msgs)
			}
			if msgs[0].Content != "" {
				t.Errorf("content = %q, want none beside the image", msgs[0].Content)
			}
		}},
		{"outgoing marked", func(t *testing.T) events.Event {
			return message(t, 4, "sent from the phone", func(d *events.MessageData) {
				d.Message.Direction = events.DirectionOut
				d.Message.SenderUID = uid
			})
		}, func(t *testing.T, msgs []discordtest.Message) {
			if !strings.Contains(msgs[0].Content, "sent from the Bilibili account") || !strings.HasSuffix(msgs[0].Username, "↗") || msgs[0].AvatarURL != "" {
				t.Errorf("message = %+v", msgs[0])
			}
		}},
		{"long text split", func(t *testing.T) events.Event { return message(t, 5, long) }, func(t *testing.T, msgs []discordtest.Message) {
			if len(msgs) != 3 {
				t.Fatalf("%d messages, want 3", len(msgs))
			}
			var total int
			for _, m := range msgs {
				if n := len([]rune(m.Content)); n > 2000 {
					t.Errorf("part of %d characters", n)
				}
				total += strings.Count(m.Content, "abcdefghi")
			}
			if total != 450 {
				t.Errorf("%d lines arrived, want 450", total)
			}
		}},
		{"reserved words in names", func(t *testing.T) events.Event {
			return message(t, 6, "hi", func(d *events.MessageData) { d.Conversation.Name = "Discord Clyde fan" })
		}, func(t *testing.T, msgs []discordtest.Message) {
			u := strings.ToLower(msgs[0].Username)
			if strings.Contains(u, "discord") || strings.Contains(u, "clyde") {
				t.Errorf("username = %q", msgs[0].Username)
			}
		}},
		{"markdown escaped", func(t *testing.T) events.Event {
			return message(t, 7, "**bold** [x](https://evil.example) https://www.bilibili.com/video/BV1_x")
		}, func(t *testing.T, msgs []discordtest.Message) {
			if want := `\*\*bold\*\* \[x\](https://evil.example) https://www.bilibili.com/video/BV1_x`; msgs[0].Content != want {
				t.Errorf("content = %q, want %q", msgs[0].Content, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, discordtest.TypeText)
			deliver(t, e.sink(t), tc.ev(t))
			tc.check(t, e.webhookMessages(e.onlyThread(t).ID))
		})
	}
}

func TestRecallEditsTheMessage(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1001, "oops"))
	deliver(t, e.sink(t), recall(t, "r-1", 1001)) // after a restart, too
	th := e.onlyThread(t)
	msgs := e.webhookMessages(th.ID)
	if len(msgs) != 1 || msgs[0].Edits != 1 || !strings.HasPrefix(msgs[0].Content, "🚫 *Recalled by the sender.*") || !strings.Contains(msgs[0].Content, "oops") {
		t.Fatalf("messages = %+v", msgs)
	}
	var edit *discordtest.Request
	for _, r := range e.fake.Requests() {
		if r.Method == http.MethodPatch && strings.HasPrefix(r.Path, "/api/v9/webhooks/") {
			edit = &r
		}
	}
	if edit == nil || edit.Query.Get("thread_id") != th.ID {
		t.Errorf("edit request = %+v, want thread_id=%s", edit, th.ID)
	}
	// A redelivered recall edits nothing more.
	deliver(t, s, recall(t, "r-1", 1001))
	if msgs := e.webhookMessages(th.ID); msgs[0].Edits != 1 {
		t.Errorf("edits = %d after a redelivered recall", msgs[0].Edits)
	}
}

func TestNoDuplicateOnRedelivery(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	ev := message(t, 1001, "once")
	deliver(t, e.sink(t), ev)
	deliver(t, e.sink(t), ev)
	if msgs := e.webhookMessages(e.onlyThread(t).ID); len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
}

func TestPartialPostResumes(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	long := strings.Repeat("word ", 700) // two parts
	deliver(t, s, message(t, 1, "warm up"))
	// The second part fails with a 500: the retry posts only the second.
	e.fake.FailAfter(webhookRoute, 1, 1, http.StatusInternalServerError, 0)
	if err := tryDeliver(s, message(t, 2, long)); err == nil {
		t.Fatal("want an error from the failed second part")
	} else if retry, _, _ := sinks.Verdict(err); !retry {
		t.Fatalf("500 not retryable: %v", err)
	}
	deliver(t, s, message(t, 2, long))
	if msgs := e.webhookMessages(e.onlyThread(t).ID); len(msgs) != 3 {
		t.Fatalf("%d messages, want 3 (warm up + two parts, none twice)", len(msgs))
	}
}

func TestRateLimitReturnsRetryAfter(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	s := e.sink(t)
	deliver(t, s, message(t, 1, "warm up"))
	e.fake.RateLimit(webhookRoute, 1, 1.5)
	start := time.Now()
	err := tryDeliver(s, message(t, 2, "limited"))
	if time.Since(start) > time.Second {
		t.Errorf("Deliver took %s: discordgo slept on the 429", time.Since(start))
	}
	retry, after, disable := sinks.Verdict(err)
	if err == nil || !retry || disable || after != 1500*time.Millisecond {
		t.Fatalf("verdict of %v = retry %v after %s disable %v, want retry after 1.5s", err, retry, after, disable)
	}
	hook := e.fake.Webhooks(e.channel)[0]
	if strings.Contains(err.Error(), hook.Token) || strings.Contains(e.logs.String(), hook.Token) {
		t.Errorf("webhook token leaked: %v", err)
	}
	deliver(t, s, message(t, 2, "limited"))
	if msgs := e.webhookMessages(e.onlyThread(t).ID); len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
}

func TestDeletedThreadRecovered(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same process"
		if restart {
			name = "after restart"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, discordtest.TypeText)
			s := e.sink(t)
			deliver(t, s, message(t, 1, "first"))
			old := e.onlyThread(t)
			e.fake.Delete(old.ID)
			if restart {
				s = e.sink(t)
			}
			deliver(t, s, message(t, 2, "second"))
			th := e.onlyThread(t)
			if th.ID == old.ID {
				t.Fatal("no new thread")
			}
			if msgs := e.webhookMessages(th.ID); len(msgs) != 1 || msgs[0].Content != "second" {
				t.Fatalf("new thread messages = %+v", msgs)
			}
			// And the next one goes there too.
			deliver(t, e.sink(t), message(t, 3, "third"))
			if msgs := e.webhookMessages(th.ID); len(msgs) != 2 {
				t.Fatalf("new thread messages = %+v", msgs)
			}
		})
	}
}

func TestArchivedThreadUnarchived(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "same process", true: "after restart"}[restart], func(t *testing.T) {
			e := newEnv(t, discordtest.TypeText)
			s := e.sink(t)
			deliver(t, s, message(t, 1, "first"))
			th := e.onlyThread(t)
			e.fake.Archive(th.ID)
			if restart {
				s = e.sink(t)
			}
			deliver(t, s, message(t, 2, "second"))
			if got := e.onlyThread(t); got.ID != th.ID || got.Archived {
				t.Fatalf("thread = %+v, want %s unarchived", got, th.ID)
			}
			if msgs := e.webhookMessages(th.ID); len(msgs) != 2 {
				t.Fatalf("messages = %+v", msgs)
			}
		})
	}
}

func TestAccountStatus(t *testing.T) {
	for _, typ := range []int{discordtest.TypeText, discordtest.TypeForum} {
		e := newEnv(t, typ)
		s := e.sink(t)
		for i := range 2 {
			ev, err := events.NewAccountStatus(uid, events.StateLoginExpired, "The Bilibili login expired @everyone: run `bilibridge login`.", t0)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, s, ev)
			var msgs []discordtest.Message
			if typ == discordtest.TypeText {
				msgs = e.fake.Messages(e.channel)
			} else {
				msgs = e.fake.Messages(e.onlyThread(t).ID)
			}
			if len(msgs) != i+1 || !strings.Contains(msgs[i].Content, "login expired") || !noPings(msgs[i].AllowedMentions) {
				t.Fatalf("type %d: messages = %+v", typ, msgs)
			}
		}
	}
}

func TestThreadNameCarriesTheAccountWhenSeveral(t *testing.T) {
	e := newEnv(t, discordtest.TypeText)
	deliver(t, e.sink(t, func(c *discord.Config) { c.MultiAccount = true }), message(t, 1001, "first"))
	if th, want := e.onlyThread(t), "Alice · "+itoa(talker)+" → "+strconv.FormatInt(uid, 10); th.Name != want {
		t.Errorf("thread name = %q, want %q", th.Name, want)
	}
}
