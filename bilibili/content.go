package bilibili

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the normalized kind of a message, as used in the event schema
// (message.kind). Several Bilibili msg_types share one kind, so sinks only
// need to know a dozen renderings instead of every msg_type.
type Kind string

// Message kinds. The string values are part of the public event schema.
const (
	KindText        Kind = "text"
	KindImage       Kind = "image"
	KindSticker     Kind = "sticker"
	KindShare       Kind = "share"
	KindNotice      Kind = "notice"
	KindVideo       Kind = "video"
	KindArticle     Kind = "article"
	KindPicture     Kind = "picture"
	KindWorks       Kind = "works"
	KindTip         Kind = "tip"
	KindGroupSystem Kind = "group_system"
	KindRecall      Kind = "recall"
	KindUnknown     Kind = "unknown"
)

// Content is a decoded message content. Every implementation is a pointer to
// one of the *Content structs of this package, so callers can type-switch on
// it to reach the fields Bilibili sent.
type Content interface {
	// Kind is the normalized kind used in the event schema.
	Kind() Kind
	// Text is a plain-text rendering that is never empty: every sink can
	// forward at least this, whatever it knows about cards or images.
	Text() string
	// Images are the pictures the message consists of (image and sticker
	// messages). Covers of cards are not images; they are in Card. Nil when none.
	Images() []Image
	// Card describes card-like messages (shares, notices, video and article
	// pushes, …). Nil for kinds that are not cards.
	Card() *Card
}

// Image is a picture to show as (part of) a message.
type Image struct {
	URL    string  `json:"url"`
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	Type   string  `json:"type,omitempty"`
	SizeKB float64 `json:"size_kb,omitempty"`
}

// Card is the platform-neutral shape of a card-like message; sinks turn it
// into an embed, a link preview or a few lines of text.
type Card struct {
	Title       string      `json:"title,omitempty"`
	Description string      `json:"description,omitempty"`
	URL         string      `json:"url,omitempty"`
	Cover       string      `json:"cover,omitempty"`
	Buttons     []Button    `json:"buttons,omitempty"`
	Fields      []CardField `json:"fields,omitempty"`
}

// Button is a link button of a card.
type Button struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// CardField is a key/value row of a card (the modules of a notice, the
// entries of a works push).
type CardField struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// ErrBadContent is wrapped by every error DecodeContent returns. The content
// that comes with such an error is an *UnknownContent holding the raw text, so
// callers can still forward something and log the error.
var ErrBadContent = errors.New("bilibili: bad message content")

// DecodeContent decodes the content string of a message of type msgType.
//
// It never returns a nil Content and never panics. A msg_type without a known
// schema yields an *UnknownContent and no error, because Bilibili adds types
// over time and that is not a fault of the payload. Malformed JSON, or JSON
// whose shape does not fit the documented schema, yields an *UnknownContent
// (Malformed set) together with an error wrapping ErrBadContent.
func DecodeContent(msgType int, raw string) (Content, error) {
	c, err := decodeContent(msgType, raw)
	if err != nil {
		return &UnknownContent{MsgType: msgType, Raw: raw, Malformed: true},
			fmt.Errorf("%w: msg_type %d: %w", ErrBadContent, msgType, err)
	}
	return c, nil
}

func decodeContent(msgType int, raw string) (Content, error) {
	switch msgType {
	case 1:
		return contentDecodeInto(raw, &TextContent{})
	case 2:
		return contentDecodeInto(raw, &ImageContent{})
	case 5, 8:
		// 8 is the deprecated "system recall"; its content is the same msg_key.
		c := &RecallContent{}
		if err := c.UnmarshalJSON([]byte(raw)); err != nil {
			return nil, err
		}
		return c, nil
	case 6:
		return contentDecodeInto(raw, &StickerContent{})
	case 7:
		return contentDecodeInto(raw, &ShareContent{})
	case 9:
		return contentDecodeInto(raw, &MiniProgramContent{})
	case 10:
		return contentDecodeInto(raw, &NoticeContent{})
	case 11:
		return contentDecodeInto(raw, &VideoContent{})
	case 12:
		return contentDecodeInto(raw, &ArticleContent{})
	case 13:
		return contentDecodeInto(raw, &PictureContent{})
	case 14:
		return contentDecodeInto(raw, &OtherShareContent{})
	case 16:
		return contentDecodeInto(raw, &WorksContent{})
	case 18:
		return decodeTip(raw)
	case 19:
		return decodeAI(raw)
	case 301, 302, 303, 304, 305, 306:
		c := &GroupSystemContent{MsgType: msgType}
		if err := contentDecodeObject(raw, c); err != nil {
			return nil, err
		}
		return c, nil
	default:
		return &UnknownContent{MsgType: msgType, Raw: raw}, nil
	}
}

func contentDecodeInto[T Content](raw string, v T) (Content, error) {
	if err := contentDecodeObject(raw, v); err != nil {
		return nil, err
	}
	return v, nil
}

// contentDecodeObject insists on a JSON object: json.Unmarshal accepts a bare
// null into a struct, which would turn garbage into an empty but "valid" message.
func contentDecodeObject(raw string, v any) error {
	trimmed := strings.TrimLeft(raw, " \t\r\n")
	if trimmed == "" {
		return errors.New("content is empty")
	}
	if trimmed[0] != '{' {
		return fmt.Errorf("content is not a JSON object (starts with %q)", contentFirstRune(trimmed))
	}
	return json.Unmarshal([]byte(raw), v)
}

func contentFirstRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return string(r)
}

// UnknownContent is a message whose msg_type has no known schema, or whose
// content could not be decoded (Malformed). Raw is kept verbatim so nothing is lost.
type UnknownContent struct {
	MsgType int
	Raw     string
	// Malformed is set when the msg_type is known but the content did not
	// decode; DecodeContent returned an error alongside.
	Malformed bool
}

// maxRawInText bounds how much raw JSON an unknown message shows, so one odd
// payload cannot flood a chat.
const maxRawInText = 300

// Kind implements Content.
func (c *UnknownContent) Kind() Kind { return KindUnknown }

// Text implements Content.
func (c *UnknownContent) Text() string {
	var b strings.Builder
	if c.Malformed {
		fmt.Fprintf(&b, "[malformed message type %d]", c.MsgType)
	} else {
		fmt.Fprintf(&b, "[unsupported message type %d]", c.MsgType)
	}
	raw := strings.TrimSpace(strings.ToValidUTF8(c.Raw, "\uFFFD"))
	if raw != "" {
		b.WriteByte(' ')
		b.WriteString(contentTruncate(raw, maxRawInText))
	}
	return b.String()
}

// Images implements Content.
func (c *UnknownContent) Images() []Image { return nil }

// Card implements Content.
func (c *UnknownContent) Card() *Card { return nil }

// MarshalJSON re-encodes the content as Bilibili sent it when that was JSON,
// and as a JSON string otherwise, so the event's content field stays valid JSON.
func (c UnknownContent) MarshalJSON() ([]byte, error) {
	if raw := strings.TrimSpace(c.Raw); raw != "" && json.Valid([]byte(raw)) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(raw)); err == nil {
			return buf.Bytes(), nil
		}
	}
	return json.Marshal(c.Raw)
}

// contentTruncate cuts s to at most max bytes on a rune boundary.
func contentTruncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// contentLines joins the non-empty lines with newlines.
func contentLines(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	return b.String()
}

// contentFirst returns the first non-empty string.
func contentFirst(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// contentHeader renders "[label] title", or "[label]" when there is no title.
func contentHeader(label, title string) string {
	title = strings.TrimSpace(title)
	if title == "" {
		return "[" + label + "]"
	}
	return "[" + label + "] " + title
}

func contentVideoURL(bvid string, aid int64) string {
	switch {
	case bvid != "":
		return "https://www.bilibili.com/video/" + bvid
	case aid > 0:
		return "https://www.bilibili.com/video/av" + strconv.FormatInt(aid, 10)
	}
	return ""
}

func contentArticleURL(cvid int64) string {
	if cvid <= 0 {
		return ""
	}
	return "https://www.bilibili.com/read/cv" + strconv.FormatInt(cvid, 10)
}
