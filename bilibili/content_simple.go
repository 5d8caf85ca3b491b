package bilibili

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TextContent is a text message (msg_type 1). It is also what an AI message
// (msg_type 19) decodes to when its content is a plain string.
type TextContent struct {
	// Content holds emotes inline as "[name]"; their pictures come with the
	// message list (e_infos), not with the content.
	Content string `json:"content"`
}

// Kind implements Content.
func (c *TextContent) Kind() Kind { return KindText }

// Text implements Content. Bilibili refuses to send empty text, but received
// content is not validated, and an empty chat message is rejected by sinks.
func (c *TextContent) Text() string {
	if strings.TrimSpace(c.Content) == "" {
		return "[empty message]"
	}
	return c.Content
}

// Images implements Content.
func (c *TextContent) Images() []Image { return nil }

// Card implements Content.
func (c *TextContent) Card() *Card { return nil }

// ImageContent is an image message (msg_type 2).
type ImageContent struct {
	URL       string `json:"url"`
	Height    int    `json:"height,omitempty"`
	Width     int    `json:"width,omitempty"`
	ImageType string `json:"imageType,omitempty"`
	// Original = 1 makes the app offer the original file.
	Original int `json:"original,omitempty"`
	// Size is in KB and often fractional.
	Size float64 `json:"size,omitempty"`
}

// Kind implements Content.
func (c *ImageContent) Kind() Kind { return KindImage }

// Text implements Content.
func (c *ImageContent) Text() string { return "[image]" }

// Images implements Content.
func (c *ImageContent) Images() []Image {
	if c.URL == "" {
		return nil
	}
	return []Image{{URL: c.URL, Width: c.Width, Height: c.Height, Type: c.ImageType, SizeKB: c.Size}}
}

// Card implements Content.
func (c *ImageContent) Card() *Card { return nil }

// StickerContent is a custom emoji / sticker (msg_type 6). Its schema is the
// image one; only the kind differs, so sinks can show it smaller.
type StickerContent struct {
	ImageContent
}

// Kind implements Content.
func (c *StickerContent) Kind() Kind { return KindSticker }

// Text implements Content.
func (c *StickerContent) Text() string { return "[sticker]" }

// RecallContent is a recall (msg_type 5, and the deprecated 8): MsgKey names
// the withdrawn message. Bilibili documents the content as the bare decimal
// msg_key, but a documented sample sends {"content":"1"}; both are accepted
// and re-encoded in the form they came in.
type RecallContent struct {
	// MsgKey exceeds 2^53, so it never goes through a float.
	MsgKey uint64

	objectForm bool
}

// Kind implements Content.
func (c *RecallContent) Kind() Kind { return KindRecall }

// Text implements Content.
func (c *RecallContent) Text() string {
	return "[recalled message " + strconv.FormatUint(c.MsgKey, 10) + "]"
}

// Images implements Content.
func (c *RecallContent) Images() []Image { return nil }

// Card implements Content.
func (c *RecallContent) Card() *Card { return nil }

// MarshalJSON writes the bare number, or {"content":"<n>"} when that is the
// form the content was decoded from.
func (c RecallContent) MarshalJSON() ([]byte, error) {
	if c.objectForm {
		return json.Marshal(struct {
			Content string `json:"content"`
		}{strconv.FormatUint(c.MsgKey, 10)})
	}
	return strconv.AppendUint(nil, c.MsgKey, 10), nil
}

// UnmarshalJSON accepts a bare number, a numeric string, or an object whose
// "content" is either of those. Fractions, exponents and signs are refused
// rather than rounded: a wrong msg_key would hide the wrong message.
func (c *RecallContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("recall content is empty")
	}
	objectForm := false
	if b[0] == '{' {
		var obj struct {
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		if len(obj.Content) == 0 {
			return errors.New("recall content object has no content")
		}
		b = bytes.TrimSpace(obj.Content)
		objectForm = true
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	key, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("recall msg_key: %w", err)
	}
	c.MsgKey, c.objectForm = key, objectForm
	return nil
}

// TipContent is a system tip shown only to the account (msg_type 18). Its
// content field is a string holding a JSON array, so the payload is encoded
// three times over; Parts is that array decoded.
type TipContent struct {
	Content string    `json:"content"`
	Parts   []TipPart `json:"-"`
}

// TipPart is one coloured run of a tip; JumpURL makes it a link.
type TipPart struct {
	Text     string `json:"text"`
	ColorDay string `json:"color_day,omitempty"`
	ColorNig string `json:"color_nig,omitempty"`
	JumpURL  string `json:"jump_url,omitempty"`
}

func decodeTip(raw string) (Content, error) {
	c := &TipContent{}
	if err := contentDecodeObject(raw, c); err != nil {
		return nil, err
	}
	if strings.TrimSpace(c.Content) == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(c.Content), &c.Parts); err != nil {
		return nil, fmt.Errorf("tip parts: %w", err)
	}
	return c, nil
}

// Kind implements Content.
func (c *TipContent) Kind() Kind { return KindTip }

// Text implements Content.
func (c *TipContent) Text() string {
	var b strings.Builder
	for _, p := range c.Parts {
		b.WriteString(p.Text)
	}
	if strings.TrimSpace(b.String()) == "" {
		return "[system tip]"
	}
	return b.String()
}

// Images implements Content.
func (c *TipContent) Images() []Image { return nil }

// Card implements Content. A tip is not a card, but linked parts would be
// lost in the plain text, so they come back as buttons; nil without links.
func (c *TipContent) Card() *Card {
	var buttons []Button
	for _, p := range c.Parts {
		if p.JumpURL != "" {
			buttons = append(buttons, Button{Text: contentFirst(strings.TrimSpace(p.Text), defaultButtonText), URL: p.JumpURL})
		}
	}
	if buttons == nil {
		return nil
	}
	return &Card{Buttons: buttons}
}

// AIContent is an AI auto-reply (msg_type 19). The paragraph schema is
// undocumented and no sample exists, so Content stays raw and Text digs out
// whatever strings look like text.
type AIContent struct {
	Content           json.RawMessage `json:"content,omitempty"`
	ShowLike          bool            `json:"show_like,omitempty"`
	ShowChange        bool            `json:"show_change,omitempty"`
	GptSessionID      int64           `json:"gpt_session_id,omitempty"`
	GptBindQuery      string          `json:"gpt_bind_query,omitempty"`
	SessionClosedLine string          `json:"session_closed_line,omitempty"`
	VoiceURL          string          `json:"voice_url,omitempty"`
	// SubType and VoiceTime have undocumented types; kept raw so an
	// unexpected type cannot make the whole message undecodable.
	SubType   json.RawMessage `json:"sub_type,omitempty"`
	VoiceTime json.RawMessage `json:"voice_time,omitempty"`
}

func decodeAI(raw string) (Content, error) {
	c := &AIContent{}
	if err := contentDecodeObject(raw, c); err != nil {
		return nil, err
	}
	if inner := bytes.TrimSpace(c.Content); len(inner) > 0 && inner[0] == '"' {
		t := &TextContent{}
		if err := json.Unmarshal(inner, &t.Content); err != nil {
			return nil, err
		}
		return t, nil
	}
	return c, nil
}

// Kind implements Content. An AI reply reads like text to the recipient.
func (c *AIContent) Kind() Kind { return KindText }

// Text implements Content.
func (c *AIContent) Text() string {
	t := strings.TrimSpace(aiText(c.Content))
	if t == "" {
		t = strings.TrimSpace(c.SessionClosedLine)
	}
	if t == "" {
		return "[AI message]"
	}
	return t
}

// Images implements Content.
func (c *AIContent) Images() []Image { return nil }

// Card implements Content.
func (c *AIContent) Card() *Card { return nil }

// aiText renders {paragraphs:[…]} one paragraph per line; anything else is
// searched as a whole. The keys are those of Bilibili's other rich-text
// schemas (opus paragraphs use text.nodes[].word.words).
func aiText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var doc struct {
		Paragraphs []json.RawMessage `json:"paragraphs"`
	}
	if err := json.Unmarshal(raw, &doc); err == nil && len(doc.Paragraphs) > 0 {
		lines := make([]string, 0, len(doc.Paragraphs))
		for _, p := range doc.Paragraphs {
			lines = append(lines, strings.Join(aiStrings(p), ""))
		}
		return contentLines(lines...)
	}
	return contentLines(aiStrings(raw)...)
}

// aiStrings lists, in document order, the string values found under keys
// that carry text. Order matters, which is why this walks tokens instead of
// decoding into maps.
func aiStrings(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []string
	// The input already passed json.Unmarshal, so its nesting is bounded and
	// the recursion is too; a token error just ends the walk.
	_ = aiWalk(dec, "", &out)
	return out
}

func aiWalk(dec *json.Decoder, key string, out *[]string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if err := aiWalk(dec, k, out); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		case '[':
			for dec.More() {
				if err := aiWalk(dec, key, out); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
	case string:
		switch key {
		case "text", "content", "words":
			if v != "" {
				*out = append(*out, v)
			}
		}
	}
	return nil
}

// GroupSystemContent is a fan-group (应援团) system message (msg_types
// 301–306: joined, left, frozen, dissolved, opened, welcome).
type GroupSystemContent struct {
	GroupID int64  `json:"group_id,omitempty"`
	Content string `json:"content"`
	// MsgType says which event it was; the content alone does not.
	MsgType int `json:"-"`
}

// Kind implements Content.
func (c *GroupSystemContent) Kind() Kind { return KindGroupSystem }

// Text implements Content.
func (c *GroupSystemContent) Text() string {
	if strings.TrimSpace(c.Content) != "" {
		return c.Content
	}
	switch c.MsgType {
	case 301, 306:
		return "[fan group: member joined]"
	case 302:
		return "[fan group: member left]"
	case 303:
		return "[fan group: frozen]"
	case 304:
		return "[fan group: dissolved]"
	case 305:
		return "[fan group: opened]"
	}
	return "[fan group system message]"
}

// Images implements Content.
func (c *GroupSystemContent) Images() []Image { return nil }

// Card implements Content.
func (c *GroupSystemContent) Card() *Card { return nil }
