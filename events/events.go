// Package events is bilibridge's public event model: CloudEvents 1.0 JSON
// envelopes on NATS subjects, with deterministic ids so that JetStream
// de-duplication and webhook-id both hold across retries and restarts.
//
// Every id in event data is a decimal string: Bilibili's msg_key exceeds
// 2^53 and would be corrupted by JavaScript consumers.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Event types.
const (
	TypeMessage       = "com.bilibili.dm.message"
	TypeRecall        = "com.bilibili.dm.recall"
	TypeSendSucceeded = "com.bilibili.dm.send.succeeded"
	TypeSendFailed    = "com.bilibili.dm.send.failed"
	TypeAccountStatus = "com.bilibili.account.status"
	TypeDeadLetter    = "com.bilibili.dead_letter"
)

// Types lists every event type on stream BILI, in the order subscribers
// see them documented.
var Types = []string{
	TypeMessage, TypeRecall, TypeSendSucceeded, TypeSendFailed, TypeAccountStatus, TypeDeadLetter,
	TypeTeamAssigned, TypeTeamStatus, TypeTeamNote, TypeTeamRead,
}

// Event is a CloudEvents 1.0 envelope in its JSON form.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// New wraps data in an envelope for account uid.
func New(uid int64, typ, id, subject string, t time.Time, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("events: encoding %s data: %w", typ, err)
	}
	return Event{
		SpecVersion:     "1.0",
		ID:              id,
		Source:          SourceURI(uid),
		Type:            typ,
		Subject:         subject,
		Time:            t.UTC(),
		DataContentType: "application/json",
		Data:            raw,
	}, nil
}

// SourceURI is the CloudEvents source of an account's events.
func SourceURI(uid int64) string { return "bilibili://" + strconv.FormatInt(uid, 10) }

// ConversationSubject is the CloudEvents subject of a conversation.
func ConversationSubject(sessionType int, talkerID uint64) string {
	return strconv.Itoa(sessionType) + "/" + strconv.FormatUint(talkerID, 10)
}

// MessageID is the deterministic id of the event for a Bilibili message.
func MessageID(uid int64, msgKey uint64) string {
	return strconv.FormatInt(uid, 10) + "-" + strconv.FormatUint(msgKey, 10)
}

// Marshal encodes e as the JSON that goes on the wire.
func (e Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// Parse decodes an envelope and checks the fields every consumer relies on.
func Parse(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("events: malformed envelope: %w", err)
	}
	if e.SpecVersion != "1.0" || e.ID == "" || e.Type == "" || e.Source == "" {
		return Event{}, fmt.Errorf("events: not a CloudEvent (specversion %q, id %q, source %q, type %q)", e.SpecVersion, e.ID, e.Source, e.Type)
	}
	return e, nil
}

// DecodeData decodes the event's data into v.
func (e Event) DecodeData(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("events: decoding %s data: %w", e.Type, err)
	}
	return nil
}
