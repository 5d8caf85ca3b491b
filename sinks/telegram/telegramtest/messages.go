package telegramtest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-telegram/bot/models"
)

// AllowedReactions are the emoji Telegram accepts in ReactionTypeEmoji.
var AllowedReactions = []string{"👍", "👎", "❤", "🔥", "🥰", "👏", "😁", "🤔", "🤯", "😱", "🤬", "😢", "🎉", "🤩",
	"🤮", "💩", "🙏", "👌", "🕊", "🤡", "🥱", "🥴", "😍", "🐳", "❤‍🔥", "🌚", "🌭", "💯", "🤣", "⚡", "🍌", "🏆",
	"💔", "🤨", "😐", "🍓", "🍾", "💋", "🖕", "😈", "😴", "😭", "🤓", "👻", "👨‍💻", "👀", "🎃", "🙈", "😇", "😨",
	"🤝", "✍", "🤗", "🫡", "🎅", "🎄", "☃", "💅", "🤪", "🗿", "🆒", "💘", "🙉", "🦄", "😘", "💊", "🙊", "😎",
	"👾", "🤷‍♂", "🤷", "🤷‍♀", "😡"}

// Message is a message in a chat: sent by the bot, or injected as a user's.
type Message struct {
	ChatID    int64
	ID        int
	ThreadID  int
	FromBot   bool
	FromUser  int64
	Method    string // sendMessage, sendPhoto; "" for injected ones
	Text      string
	Caption   string
	ParseMode string
	// Photo is the photo's URL or file_id as given; PhotoUpload the bytes
	// of an uploaded photo (Photo is then "upload:<filename>").
	Photo       string
	PhotoUpload []byte
	ReplyTo     int
	ReplyMarkup string
	// LinkPreview is the raw link_preview_options field.
	LinkPreview string
	Edits       int
	Reactions   []string
	Service     bool // topic creation
}

// botUser is the fake's bot as Telegram describes it.
func botUser() *models.User {
	return &models.User{ID: BotID, IsBot: true, FirstName: "bilibridge", Username: "bilibridge_bot"}
}

func (m *Message) model(c *Chat) *models.Message {
	out := &models.Message{ID: m.ID, Date: int(time.Now().Unix()), Text: m.Text, Caption: m.Caption,
		Chat: models.Chat{ID: c.ID, Type: models.ChatTypeSupergroup, Title: c.Title, IsForum: c.IsForum}}
	if m.FromBot {
		out.From = botUser()
	} else {
		out.From = &models.User{ID: m.FromUser, FirstName: "user"}
	}
	if m.ThreadID != 0 && c.IsForum {
		out.MessageThreadID, out.IsTopicMessage = m.ThreadID, true
	}
	if m.Photo != "" {
		out.Photo = []models.PhotoSize{{FileID: "AgACAgIAAxkBAAIsent" + strconv.Itoa(m.ID), FileUniqueID: "sent" + strconv.Itoa(m.ID), Width: 320, Height: 320}}
	}
	if m.Service {
		out.ForumTopicCreated = &models.ForumTopicCreated{Name: m.Text}
		out.Text = ""
	}
	return out
}

// newID numbers a chat's messages, from 1, as Telegram does.
func (s *Server) newID(chat int64) int {
	if s.nextMsg[chat] == 0 {
		s.nextMsg[chat] = 1
	}
	id := s.nextMsg[chat]
	s.nextMsg[chat]++
	return id
}

func (s *Server) find(chat int64, id int) *Message {
	for _, m := range s.msgs[chat] {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// message looks up p's message_id in c; notFound is Telegram's
// description when it is missing, which names what the method wanted it
// for.
func (s *Server) message(c *Chat, p map[string]string, notFound string) (*Message, error) {
	id, _ := strconv.Atoi(p["message_id"])
	if m := s.find(c.ID, id); m != nil {
		return m, nil
	}
	return nil, badRequest(notFound)
}

// send serves sendMessage and sendPhoto: where the message goes, what it
// replies to and its buttons are checked as for any message, then its
// content.
func (s *Server) send(method string, c *Chat, p map[string]string, files map[string][]byte) (any, error) {
	m := &Message{ChatID: c.ID, FromBot: true, Method: method, ParseMode: p["parse_mode"], ReplyMarkup: p["reply_markup"], LinkPreview: p["link_preview_options"]}
	if p["message_thread_id"] != "" {
		tp, err := s.topic(c, p)
		if err != nil {
			return nil, err
		}
		if tp.Closed {
			return nil, badRequest("TOPIC_CLOSED")
		}
		m.ThreadID = tp.ThreadID
	}
	if rp := p["reply_parameters"]; rp != "" {
		r, err := jsonParam[models.ReplyParameters](rp, "reply parameters")
		if err != nil {
			return nil, err
		}
		if s.find(c.ID, r.MessageID) == nil && !r.AllowSendingWithoutReply {
			return nil, badRequest("message to be replied not found")
		}
		m.ReplyTo = r.MessageID
	}
	if rm := p["reply_markup"]; rm != "" {
		if err := checkMarkup(rm); err != nil {
			return nil, err
		}
	}
	switch method {
	case "sendMessage":
		m.Text = p["text"]
		if strings.TrimSpace(m.Text) == "" {
			return nil, badRequest("message text is empty")
		}
		n, err := visibleLen(m.Text, m.ParseMode)
		if err != nil {
			return nil, err
		}
		if n > MaxTextLen {
			return nil, badRequest("message is too long")
		}
	case "sendPhoto":
		m.Caption = p["caption"]
		n, err := visibleLen(m.Caption, m.ParseMode)
		if err != nil {
			return nil, err
		}
		if n > MaxCaptionLen {
			return nil, badRequest("message caption is too long")
		}
		if m.Photo, m.PhotoUpload, err = s.photo(p["photo"], files["photo"]); err != nil {
			return nil, err
		}
	}
	m.ID = s.newID(c.ID)
	s.msgs[c.ID] = append(s.msgs[c.ID], m)
	return m.model(c), nil
}

// errNotModified is Telegram's answer to an edit that changes nothing.
var errNotModified = badRequest("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")

// edit serves editMessageText and editMessageCaption.
func (s *Server) edit(method string, c *Chat, p map[string]string) (any, error) {
	const notFound = "message to edit not found"
	m, err := s.message(c, p, notFound)
	if err != nil {
		return nil, err
	}
	if !m.FromBot || m.Service {
		// The bot edits only what it sent, and a topic's creation is not that.
		return nil, badRequest(notFound)
	}
	if method == "editMessageText" {
		if m.Photo != "" {
			return nil, badRequest("there is no text in the message to edit")
		}
		n, err := visibleLen(p["text"], p["parse_mode"])
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, badRequest("message text is empty")
		}
		if n > MaxTextLen {
			return nil, badRequest("MESSAGE_TOO_LONG")
		}
		if p["text"] == m.Text {
			return nil, errNotModified
		}
		m.Text = p["text"]
	} else {
		if m.Photo == "" {
			return nil, badRequest("there is no caption in the message to edit")
		}
		n, err := visibleLen(p["caption"], p["parse_mode"])
		if err != nil {
			return nil, err
		}
		if n > MaxCaptionLen {
			return nil, badRequest("message caption is too long")
		}
		if p["caption"] == m.Caption {
			return nil, errNotModified
		}
		m.Caption = p["caption"]
	}
	m.ParseMode = p["parse_mode"]
	m.Edits++
	return m.model(c), nil
}

// reaction is a ReactionType as setMessageReaction receives it.
type reaction struct {
	Type  string `json:"type"`
	Emoji string `json:"emoji"`
}

// react serves setMessageReaction: the reactions given replace the bot's.
func (s *Server) react(c *Chat, p map[string]string) (any, error) {
	m, err := s.message(c, p, "message to react not found")
	if err != nil {
		return nil, err
	}
	var rs []reaction
	if raw := p["reaction"]; raw != "" {
		if rs, err = jsonParam[[]reaction](raw, "reaction types"); err != nil {
			return nil, err
		}
	}
	m.Reactions = nil
	for _, r := range rs {
		if r.Type != "emoji" || !slices.Contains(AllowedReactions, r.Emoji) {
			return nil, badRequest("REACTION_INVALID")
		}
		m.Reactions = append(m.Reactions, r.Emoji)
	}
	return true, nil
}

// inlineMarkup is the part of reply_markup that checkMarkup looks at.
type inlineMarkup struct {
	InlineKeyboard [][]struct {
		Text     string           `json:"text"`
		URL      string           `json:"url"`
		CopyText *json.RawMessage `json:"copy_text"`
	} `json:"inline_keyboard"`
}

// checkMarkup accepts an inline keyboard of URL buttons with http(s)
// URLs, as Telegram would (other schemes are refused).
func checkMarkup(raw string) error {
	mk, err := jsonParam[inlineMarkup](raw, "reply keyboard markup")
	if err != nil {
		return err
	}
	for _, row := range mk.InlineKeyboard {
		for _, b := range row {
			if b.Text == "" {
				return badRequest("text buttons are unallowed in the inline keyboard")
			}
			if b.CopyText != nil {
				// go-telegram/bot's InlineKeyboardButton always sends
				// "copy_text":{"text":""}; Telegram refuses a button with
				// two actions (reported in go-telegram/bot#167).
				var ct struct {
					Text string `json:"text"`
				}
				if json.Unmarshal(*b.CopyText, &ct) != nil || ct.Text == "" || b.URL != "" {
					return badRequest("BUTTON_COPY_TEXT_INVALID")
				}
				continue
			}
			if !strings.HasPrefix(b.URL, "https://") && !strings.HasPrefix(b.URL, "http://") && !strings.HasPrefix(b.URL, "tg://") {
				return badRequest("BUTTON_URL_INVALID")
			}
		}
	}
	return nil
}
