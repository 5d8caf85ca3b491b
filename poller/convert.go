package poller

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
)

// This file is the one place where Bilibili's message model becomes the
// public event model: events depends on nothing of ours, so the JSON users
// rely on changes only when events changes.

// Source is what the poller knows about a message beyond Bilibili's
// message object.
type Source struct {
	AccountUID   int64
	Conversation events.Conversation
	// SenderName names the sender when it differs from the conversation
	// (fan-group members); empty means the conversation name or, for
	// outgoing messages, the account.
	SenderName string
}

// MessageEvent converts a Bilibili message into its event: a recall event
// for msg_type 5, a message event otherwise. Content that does not decode
// still becomes an event (kind unknown, the raw content kept); the decode
// error is returned beside it for the log.
func MessageEvent(src Source, m *bilibili.Message) (events.Event, error) {
	subject := src.Conversation.Subject()
	id := events.MessageID(src.AccountUID, m.MsgKey)
	content, decodeErr := m.Decode()
	if rc, ok := content.(*bilibili.RecallContent); ok {
		ev, err := events.New(src.AccountUID, events.TypeRecall, id, subject, m.Time(), events.RecallData{
			AccountUID:     src.AccountUID,
			Conversation:   src.Conversation,
			RecalledMsgKey: rc.MsgKey,
			BySystem:       m.SysCancel || m.MsgType == 8, // 8: the retired system recall
			SenderUID:      m.SenderUID,
			Timestamp:      m.Time(),
		})
		return ev, err
	}
	dir := events.DirectionIn
	if m.SenderUID == src.AccountUID {
		dir = events.DirectionOut
	}
	data := events.MessageData{
		AccountUID:   src.AccountUID,
		Conversation: src.Conversation,
		Message: events.Message{
			MsgKey:     m.MsgKey,
			Seqno:      m.MsgSeqno,
			Direction:  dir,
			SenderUID:  m.SenderUID,
			SenderName: src.SenderName,
			Timestamp:  m.Time(),
			MsgType:    m.MsgType,
			Kind:       events.Kind(content.Kind()),
			Text:       content.Text(),
			Images:     eventImages(content.Images()),
			Card:       eventCard(content.Card()),
			MsgSource:  m.MsgSource,
			AutoReply:  isAutoReply(m.MsgSource),
			Status:     status(m.MsgStatus),
			Content:    rawContent(m.Content),
		},
	}
	ev, err := events.New(src.AccountUID, events.TypeMessage, id, subject, m.Time(), data)
	if err != nil {
		return ev, err
	}
	if decodeErr != nil {
		return ev, fmt.Errorf("message %d: %w", m.MsgKey, decodeErr)
	}
	return ev, nil
}

// isAutoReply: msg_source 8–11 are the uploader's auto-replies, 19 the AI one.
func isAutoReply(source int) bool { return (source >= 8 && source <= 11) || source == 19 }

func status(s int) string {
	switch s {
	case bilibili.StatusRecalled:
		return events.StatusRecalled
	case bilibili.StatusImageExpired:
		return events.StatusImageExpired
	}
	return events.StatusNormal
}

// rawContent keeps a JSON object or array content as it is (compacted), and
// turns anything else into a JSON string, so the field is always valid JSON.
func rawContent(s string) json.RawMessage {
	b := []byte(s)
	if json.Valid(b) && len(bytes.TrimSpace(b)) > 0 {
		switch bytes.TrimSpace(b)[0] {
		case '{', '[':
			var buf bytes.Buffer
			if json.Compact(&buf, b) == nil {
				return buf.Bytes()
			}
		}
	}
	q, _ := json.Marshal(s)
	return q
}

// eventImages copies the client's images into the event model.
func eventImages(in []bilibili.Image) []events.Image {
	if len(in) == 0 {
		return nil
	}
	out := make([]events.Image, len(in))
	for i, im := range in {
		out[i] = events.Image{URL: im.URL, Width: im.Width, Height: im.Height, Type: im.Type, SizeKB: im.SizeKB}
	}
	return out
}

// eventCard copies the client's card into the event model.
func eventCard(c *bilibili.Card) *events.Card {
	if c == nil {
		return nil
	}
	out := &events.Card{Title: c.Title, Description: c.Description, URL: c.URL, Cover: c.Cover}
	for _, b := range c.Buttons {
		out.Buttons = append(out.Buttons, events.Button{Text: b.Text, URL: b.URL})
	}
	for _, f := range c.Fields {
		out.Fields = append(out.Fields, events.CardField{Title: f.Title, Value: f.Value})
	}
	return out
}
