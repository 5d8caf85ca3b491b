package telegram

import (
	"html"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/bilibridge/bilibridge/events"
)

// Telegram's limits, counted in UTF-16 code units of the visible text.
const (
	maxText      = 4096
	maxCaption   = 1024
	maxTopicName = 128
)

// urlKeyboard is an inline keyboard of URL buttons. The library's
// InlineKeyboardButton always sends "copy_text":{"text":""}, which
// Telegram refuses (BUTTON_COPY_TEXT_INVALID, go-telegram/bot#167), so
// the sink sends its own type.
type urlKeyboard struct {
	InlineKeyboard [][]urlButton `json:"inline_keyboard"`
}

type urlButton struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// part is one Telegram message to send: a text, or a photo with a caption.
// Text and Caption are HTML (parse mode HTML) with everything escaped.
type part struct {
	Text    string
	Photo   string // the photo's URL
	Caption string
	Buttons [][]urlButton
	// ReplyTo is a message to reply to (send results).
	ReplyTo int
	// Fallback is the text sent when the photo can be neither fetched by
	// Telegram nor downloaded and uploaded.
	Fallback string
}

// esc escapes text for HTML parse mode: <, >, &, and quotes.
func esc(s string) string { return html.EscapeString(s) }

// httpURL reports whether u is an absolute http(s) URL, the only kind
// Telegram accepts in links and buttons.
func httpURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

// visibleLen is the length Telegram counts for HTML: tags removed,
// entities decoded, in UTF-16 code units.
func visibleLen(h string) int {
	return utf16Len(html.UnescapeString(stripTags(h)))
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// splitPlain splits plain text into chunks of at most limit UTF-16 units
// (escaping does not change the visible length), preferring to cut after
// a line break, then after a space.
func splitPlain(s string, limit int) []string {
	if limit < 16 {
		limit = 16
	}
	var out []string
	for utf16Len(s) > limit {
		// Find the longest prefix within limit.
		n, cut := 0, 0
		for i, r := range s {
			w := 1
			if r >= 0x10000 {
				w = 2
			}
			if n+w > limit {
				cut = i
				break
			}
			n += w
		}
		head := s[:cut]
		if i := strings.LastIndexByte(head, '\n'); i > len(head)/2 {
			head = head[:i+1]
		} else if i := strings.LastIndexByte(head, ' '); i > len(head)/2 {
			head = head[:i+1]
		}
		out = append(out, head)
		s = s[len(head):]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

// TopicName is the forum topic of a conversation: "name · uid" for a user,
// the name for fan groups and system assistants; at most 128 characters.
func TopicName(c events.Conversation) string { return topicNameWithin(c, maxTopicName) }

// topicNameWithin is TopicName in at most limit characters, the talker's
// id kept whole.
func topicNameWithin(c events.Conversation, limit int) string {
	id := strconv.FormatUint(c.TalkerID, 10)
	name := strings.Join(strings.Fields(c.Name), " ")
	switch {
	case c.Kind == events.ConversationGroup || c.Kind == events.ConversationSystem:
		if name == "" {
			if c.Kind == events.ConversationGroup {
				return "Fan group " + id
			}
			return "System " + id
		}
		return truncRunes(name, limit)
	case name == "":
		return id
	}
	suffix := " · " + id
	return truncRunes(name, limit-len([]rune(suffix))) + suffix
}

func truncRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// talkerTitle names the conversation in a flat chat's header.
func talkerTitle(c events.Conversation) string {
	id := strconv.FormatUint(c.TalkerID, 10)
	if c.Name == "" {
		return esc(id)
	}
	if c.Kind == events.ConversationUser {
		return "<b>" + esc(c.Name) + "</b> · " + esc(id)
	}
	return "<b>" + esc(c.Name) + "</b>"
}

// header is the lines above a message's body: in a flat chat who the
// conversation is; the sender in a fan group; the account's own messages
// and auto-replies labelled.
func header(d events.MessageData, flat bool) string {
	var lines []string
	if flat {
		lines = append(lines, "💬 "+talkerTitle(d.Conversation))
	}
	m := d.Message
	switch {
	case m.Direction == events.DirectionOut:
		lines = append(lines, "↗ <i>sent by the account</i>")
	case d.Conversation.Kind == events.ConversationGroup && m.SenderName != "" && m.SenderName != d.Conversation.Name:
		lines = append(lines, "<b>"+esc(m.SenderName)+"</b> · "+esc(strconv.FormatInt(m.SenderUID, 10)))
	}
	if m.AutoReply {
		lines = append(lines, "🤖 <i>auto-reply</i>")
	}
	return strings.Join(lines, "\n")
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}

// renderMessage turns a message event into the Telegram messages to send.
func renderMessage(d events.MessageData, flat bool) []part {
	m := d.Message
	head := header(d, flat)
	var tail string
	if m.Status == events.StatusRecalled {
		tail = "<i>(recalled)</i>"
	}
	switch {
	case m.Kind == events.KindImage || m.Kind == events.KindSticker:
		if m.Status == events.StatusImageExpired || len(m.Images) == 0 {
			return textParts(head, "<i>"+esc(m.Text)+" (expired)</i>", tail)
		}
		var parts []part
		for i, img := range m.Images {
			caption := ""
			if i == 0 {
				caption = join(head, tail)
			}
			parts = append(parts, photoPart(img.URL, caption, nil, m.Text))
		}
		return parts
	case m.Card != nil:
		return renderCard(head, tail, m)
	case m.Kind == events.KindTip || m.Kind == events.KindGroupSystem:
		return textParts(head, "<i>"+esc(m.Text)+"</i>", tail)
	}
	return textPartsPlain(head, m.Text, tail)
}

func photoPart(u, caption string, buttons [][]urlButton, label string) part {
	fb := caption
	if httpURL(u) {
		fb = join(caption, `<a href="`+esc(u)+`">`+esc(label)+`</a>`)
	} else {
		fb = join(caption, esc(label))
	}
	if !httpURL(u) {
		return part{Text: fb, Buttons: buttons}
	}
	return part{Photo: u, Caption: caption, Buttons: buttons, Fallback: fb}
}

// textParts is one message of head, body (HTML) and tail, or several when
// it is too long (the body is then cut as plain text would be: it is only
// used for short bodies).
func textParts(head, body, tail string) []part {
	return []part{{Text: join(head, body, tail)}}
}

// textPartsPlain renders plain text, split to fit 4096: the header goes
// with the first message, the tail with the last.
func textPartsPlain(head, text, tail string) []part {
	room := maxText - visibleLen(head) - visibleLen(tail) - 4
	chunks := splitPlain(text, room)
	parts := make([]part, len(chunks))
	for i, c := range chunks {
		h, t := "", ""
		if i == 0 {
			h = head
		}
		if i == len(chunks)-1 {
			t = tail
		}
		body := esc(c)
		if strings.TrimSpace(c) == "" {
			body = "<i>(empty)</i>"
		}
		parts[i] = part{Text: join(h, body, t)}
	}
	return parts
}

// renderCard renders a share, video, article, picture, works or notice
// card: a bold (linked) title, the description, the notice's rows, link
// buttons, and the cover as a photo.
func renderCard(head, tail string, m events.Message) []part {
	c := m.Card
	var lines []string
	title := c.Title
	if title == "" {
		title = m.Text
	}
	if httpURL(c.URL) {
		lines = append(lines, `<b><a href="`+esc(c.URL)+`">`+esc(title)+`</a></b>`)
	} else {
		lines = append(lines, "<b>"+esc(title)+"</b>")
	}
	if c.Description != "" {
		lines = append(lines, esc(c.Description))
	}
	for _, f := range c.Fields {
		switch {
		case f.Title != "" && f.Value != "":
			lines = append(lines, "<b>"+esc(f.Title)+"</b>: "+esc(f.Value))
		case f.Value != "":
			lines = append(lines, esc(f.Value))
		case f.Title != "":
			lines = append(lines, "<b>"+esc(f.Title)+"</b>")
		}
	}
	var buttons [][]urlButton
	seen := map[string]bool{}
	add := func(text, u string) {
		if !httpURL(u) || seen[u] || len(buttons) >= 8 {
			return
		}
		seen[u] = true
		if text == "" {
			text = "Open"
		}
		buttons = append(buttons, []urlButton{{Text: truncRunes(text, 64), URL: u}})
	}
	add("Open", c.URL)
	for _, b := range c.Buttons {
		add(b.Text, b.URL)
	}
	body := strings.Join(lines, "\n")
	if m.Kind == events.KindNotice || m.Kind == events.KindWorks {
		// Notices are system pushes: mark them as such.
		body = "🔔 " + body
	}
	full := join(head, body, tail)
	if httpURL(c.Cover) {
		if visibleLen(full) <= maxCaption {
			return []part{photoPart(c.Cover, full, buttons, title)}
		}
		parts := []part{photoPart(c.Cover, head, nil, title)}
		parts = append(parts, textPartsHTML(body, tail)...)
		parts[len(parts)-1].Buttons = buttons
		return parts
	}
	var parts []part
	if visibleLen(full) <= maxText {
		parts = []part{{Text: full}}
	} else {
		parts = textPartsPlain(head, m.Text, tail)
	}
	parts[len(parts)-1].Buttons = buttons
	return parts
}

// textPartsHTML is body+tail as one message when it fits, else the plain
// rendering of the body lines split to fit.
func textPartsHTML(body, tail string) []part {
	full := join(body, tail)
	if visibleLen(full) <= maxText {
		return []part{{Text: full}}
	}
	return textPartsPlain("", html.UnescapeString(stripTags(body)), tail)
}

// stripTags drops HTML tags, keeping the text between them.
func stripTags(h string) string {
	var b strings.Builder
	in := false
	for _, r := range h {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// statusText renders an account status event in plain words.
func statusText(d events.AccountStatusData) string {
	icon, what := "ℹ️", d.State
	switch d.State {
	case events.StateLoginExpired:
		icon, what = "⚠️", "Bilibili login expired"
	case events.StateRiskControl:
		icon, what = "⚠️", "Bilibili risk control"
	case events.StateLoggedIn:
		icon, what = "✅", "Bilibili login OK"
	case events.StateCookieRefreshed:
		icon, what = "🔄", "Bilibili cookies refreshed"
	case events.StateSinkDisabled:
		icon, what = "⛔", "A delivery target was disabled"
	}
	msg := d.Message
	if msg == "" {
		msg = "(no details)"
	}
	return icon + " <b>" + esc(what) + "</b>\n" + esc(truncRunes(msg, 3000))
}
