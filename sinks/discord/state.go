package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/kvkey"
)

// KV keys (all under "dc."). What must outlast the events lives in the
// sink state bucket bili_state (Config.State):
//
//	dc.thread.<channel>.<uid>.<session_type>.<talker>  conversation → thread, and the team state it shows
//	dc.conv.<channel>.<thread>                         thread → conversation
//	dc.webhook.<channel>                               the webhook (id and secret token)
//	dc.status.<channel>                                forum channels: the status post
//
// Records about one event live in bili_records (Config.Records), whose
// keys expire with the events (STREAM_MAX_AGE after their last write);
// one is written per DM, so in bili_state they would pile up forever:
//
//	dc.msg.<channel>.<event id>                        posted message ids
//	dc.echo.<uid>.<msg_key>                            a message sent from Discord
//	dc.noted.<channel>.<uid>.<st>.<talker>.<hash>      a note typed here as /note, not to be posted again
//
// A record is needed only while its event can still be delivered again,
// recalled or echoed, that is while the event is in the stream: it is
// written when the event is delivered, so it outlives it. Replies need no
// per-message record here: a thread, not the message replied to, names
// the conversation (dc.conv). Earlier versions wrote the records to
// bili_state; they are not moved: nothing reads them there any more, and
// they stay harmlessly.

// threadRec is a conversation's thread, and the team state its name and
// its being archived show. ThreadID is empty while the conversation has
// no thread here: a team action on it is kept for the thread to come.
type threadRec struct {
	ThreadID string `json:"thread_id"`
	// Name is the thread's name as last set; empty for a thread made by
	// an older version, named threadName without team state.
	Name string `json:"name,omitempty"`
	// Assignee and Status are the team state the thread shows: its name
	// carries both, and it is archived while the status is done.
	Assignee string `json:"assignee,omitempty"`
	Status   string `json:"status,omitempty"`
}

// hasTeamState: the record holds more than a thread.
func (r threadRec) hasTeamState() bool { return r.Assignee != "" || r.Status != "" }

// conversation is the conversation of a thread, as the sink keeps it.
type conversation struct {
	AccountUID  int64  `json:"account_uid,string"`
	SessionType int    `json:"session_type"`
	TalkerID    uint64 `json:"talker_id,string"`
	Name        string `json:"name,omitempty"`
	// Seqno is the highest seqno posted, for "/read".
	Seqno uint64 `json:"seqno,string,omitempty"`
}

// postedRec is what was posted for a message event.
type postedRec struct {
	ThreadID   string   `json:"thread_id"`
	MessageIDs []string `json:"message_ids"`
	// Parts is how many messages the event needs; fewer ids means a
	// retry resumes after the last one posted.
	Parts int `json:"parts"`
	// Content is the first message's content, for the recall edit.
	Content string `json:"content,omitempty"`
}

func (r *postedRec) done() bool { return r != nil && len(r.MessageIDs) >= r.Parts }

// webhookRec is the channel webhook. Token is a secret.
type webhookRec struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

func (s *Sink) threadKey(c conversation) string {
	return fmt.Sprintf("dc.thread.%s.%d.%d.%d", s.channel, c.AccountUID, c.SessionType, c.TalkerID)
}
func (s *Sink) convKey(thread string) string {
	return "dc.conv." + s.channel + "." + kvkey.Token(thread)
}
func (s *Sink) msgKey(eventID string) string {
	return "dc.msg." + s.channel + "." + kvkey.Token(eventID)
}
func (s *Sink) webhookKey() string { return "dc.webhook." + s.channel }
func (s *Sink) statusKey() string  { return "dc.status." + s.channel }
func echoKey(uid int64, msgKey string) string {
	return fmt.Sprintf("dc.echo.%d.%s", uid, kvkey.Token(msgKey))
}

func convOf(uid int64, c events.Conversation) conversation {
	return conversation{AccountUID: uid, SessionType: c.SessionType, TalkerID: c.TalkerID, Name: c.Name}
}

// load reads key of kv (s.state or s.records) into v; found is false
// when the key does not exist.
func (s *Sink) load(ctx context.Context, kv jetstream.KeyValue, key string, v any) (found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discord: reading %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		s.log.Warn("discord: ignoring a malformed record", "key", key, "err", err)
		return false, nil
	}
	return true, nil
}

// store writes v under key of kv (s.state or s.records).
func (s *Sink) store(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("discord: writing %s: %w", key, err)
	}
	return nil
}

// forget deletes a key of the state bucket: only lasting mappings are
// ever dropped; records expire by themselves.
func (s *Sink) forget(ctx context.Context, key string) {
	if err := s.state.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Warn("discord: deleting state", "key", key, "err", err)
	}
}

// Key is the conversation's key in the team state.
func (c conversation) Key() events.ConversationKey {
	return events.ConversationKey{AccountUID: c.AccountUID, SessionType: c.SessionType, TalkerID: c.TalkerID}
}
