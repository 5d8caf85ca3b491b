package discord

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/bilibridge/bilibridge/events"
)

// bilibiliPink is the embed colour.
const bilibiliPink = 0xFB7299

// noMentions is sent on every message: nothing a Bilibili user writes can
// ping anyone (a nil Parse would be sent as null, which means the default).
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// render turns a message event into the webhook messages that show it.
func render(d *events.MessageData) []*discordgo.WebhookParams {
	m := &d.Message
	username, avatar := sender(d)
	var embeds []*discordgo.MessageEmbed
	text := m.Text
	if c := m.Card; c != nil && (c.Title != "" || c.Description != "") {
		if e := cardEmbed(c); e != nil {
			embeds = append(embeds, e)
			text = ""
		}
	}
	for _, img := range m.Images {
		if u := httpURL(img.URL); u != "" {
			embeds = append(embeds, &discordgo.MessageEmbed{Type: discordgo.EmbedTypeImage, URL: u, Image: &discordgo.MessageEmbedImage{URL: u}})
		}
	}
	if len(m.Images) > 0 && len(embeds) > 0 && (m.Kind == events.KindImage || m.Kind == events.KindSticker) {
		text = ""
	}
	var prefix []string
	if m.Direction == events.DirectionOut {
		prefix = append(prefix, "↗ *sent from the Bilibili account*")
	}
	if m.AutoReply {
		prefix = append(prefix, "🤖 *auto-reply*")
	}
	switch m.Status {
	case events.StatusRecalled:
		prefix = append(prefix, "🚫 *recalled*")
	case events.StatusImageExpired:
		prefix = append(prefix, "*(image expired)*")
	}
	content := escapeMarkdown(text)
	if len(prefix) > 0 {
		p := strings.Join(prefix, " · ")
		if content != "" {
			content = p + "\n" + content
		} else {
			content = p
		}
	}
	chunks := splitContent(content, maxContent)
	var out []*discordgo.WebhookParams
	for _, c := range chunks {
		out = append(out, &discordgo.WebhookParams{Content: c, Username: username, AvatarURL: avatar, AllowedMentions: noMentions()})
	}
	// Embeds ride on the last text message, ten at a time.
	for len(embeds) > 0 {
		n := min(len(embeds), maxEmbeds)
		if len(out) > 0 && out[len(out)-1].Embeds == nil {
			out[len(out)-1].Embeds = embeds[:n]
		} else {
			out = append(out, &discordgo.WebhookParams{Username: username, AvatarURL: avatar, Embeds: embeds[:n], AllowedMentions: noMentions()})
		}
		embeds = embeds[n:]
	}
	if len(out) == 0 {
		out = append(out, &discordgo.WebhookParams{Content: "*(empty message)*", Username: username, AvatarURL: avatar, AllowedMentions: noMentions()})
	}
	return out
}

// plain is p without embeds, for a retry after Discord refused an embed.
func plain(p *discordgo.WebhookParams, d *events.MessageData) *discordgo.WebhookParams {
	q := *p
	q.Embeds = nil
	if q.Content == "" {
		q.Content = truncate(escapeMarkdown(d.Message.Text), maxContent)
	}
	return &q
}

// sender is the webhook username and avatar of a message.
func sender(d *events.MessageData) (name, avatar string) {
	m, c := &d.Message, &d.Conversation
	name = m.SenderName
	if m.Direction == events.DirectionOut {
		if name == "" {
			name = "Bilibili account"
		}
		return webhookUsername(name + " ↗"), ""
	}
	if name == "" {
		name = c.Name
	}
	if name == "" {
		name = fmt.Sprintf("Bilibili user %d", m.SenderUID)
	}
	// The conversation avatar is the sender's in a one-to-one conversation.
	if c.Kind != events.ConversationGroup || m.SenderName == "" {
		avatar = httpURL(c.Avatar)
	}
	return webhookUsername(name), avatar
}

// reservedName matches the words Discord refuses in a webhook username.
var reservedName = regexp.MustCompile(`(?i)discord|clyde`)

// webhookUsername keeps a name within what Discord accepts for a webhook
// username: 1–80 characters, without "discord" or "clyde".
func webhookUsername(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = reservedName.ReplaceAllStringFunc(s, func(m string) string {
		r := []rune(m)
		return string(r[:2]) + "·" + string(r[2:])
	})
	switch strings.ToLower(s) {
	case "", "everyone", "here":
		s = "Bilibili user"
	}
	return truncate(s, maxUsername)
}

// cardEmbed renders a card as an embed.
func cardEmbed(c *events.Card) *discordgo.MessageEmbed {
	e := &discordgo.MessageEmbed{
		Type:        discordgo.EmbedTypeRich,
		Title:       truncate(c.Title, 256),
		URL:         httpURL(c.URL),
		Description: truncate(escapeMarkdown(c.Description), 4096),
		Color:       bilibiliPink,
	}
	if u := httpURL(c.Cover); u != "" {
		e.Thumbnail = &discordgo.MessageEmbedThumbnail{URL: u}
	}
	for _, f := range c.Fields {
		if len(e.Fields) == 25 {
			break
		}
		name, value := strings.TrimSpace(f.Title), strings.TrimSpace(f.Value)
		if name == "" {
			name = "\u200b"
		}
		if value == "" {
			value = "\u200b"
		}
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: truncate(name, 256), Value: truncate(escapeMarkdown(value), 1024), Inline: true})
	}
	var links []string
	for _, b := range c.Buttons {
		if u := httpURL(b.URL); u != "" && b.Text != "" {
			links = append(links, "["+escapeLinkText(b.Text)+"]("+u+")")
		}
	}
	if len(links) > 0 && len(e.Fields) < 25 {
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "Links", Value: truncate(strings.Join(links, " · "), 1024)})
	}
	if e.Title == "" && e.Description == "" {
		return nil
	}
	return e
}

// httpURL returns u as an absolute http(s) URL, or "" when it is not one
// (Discord refuses an embed with any other URL).
func httpURL(u string) string {
	u = strings.TrimSpace(u)
	if strings.HasPrefix(u, "//") {
		u = "https:" + u
	}
	if (strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) && !strings.ContainsAny(u, " \n\t") {
		return u
	}
	return ""
}

// escapeMarkdown keeps Discord from formatting a Bilibili text, leaving
// links alone so they stay clickable.
func escapeMarkdown(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if strings.HasPrefix(s[i:], "http://") || strings.HasPrefix(s[i:], "https://") {
			j := strings.IndexAny(s[i:], " \t\n")
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		c := s[i]
		if strings.IndexByte("\\*_~`|>#[]-", c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func escapeLinkText(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", "\n", " ").Replace(s)
}

// truncate cuts s to at most n characters, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// splitContent splits s into parts of at most n characters, at a line
// break or a space when one is near the end of a part.
func splitContent(s string, n int) []string {
	var out []string
	for s != "" {
		r := []rune(s)
		if len(r) <= n {
			out = append(out, s)
			break
		}
		cut := n
		for i := n; i > n*3/4; i-- {
			if r[i] == '\n' {
				cut = i
				break
			}
		}
		if cut == n {
			for i := n; i > n*3/4; i-- {
				if r[i] == ' ' {
					cut = i
					break
				}
			}
		}
		// Do not leave a dangling escape at the end of a part.
		if cut > 0 && r[cut-1] == '\\' {
			cut--
		}
		part := string(r[:cut])
		rest := string(r[cut:])
		if cut < len(r) && (r[cut] == '\n' || r[cut] == ' ') {
			rest = string(r[cut+1:])
		}
		if strings.TrimSpace(part) != "" {
			out = append(out, part)
		}
		s = rest
	}
	return out
}
