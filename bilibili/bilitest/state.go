package bilitest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Message is a message put into a conversation with Deliver.
type Message struct {
	SessionType int    // 1 user or system, 2 fan group
	TalkerID    uint64 // peer mid, system talker id, or group id
	// SenderUID is the talker, the account itself (sent from the phone), a
	// group member, or 0 for group system tips. 0 in a session_type 1
	// conversation means the talker.
	SenderUID int64
	MsgType   int
	Content   string // raw content string exactly as Bilibili sends it
	MsgSource int
	Time      time.Time // zero = now
	// Optional extras.
	AtUIDs         []uint64 // nil → "at_uids": null
	NotifyCode     string
	NewFaceVersion int
	MsgStatus      int  // e.g. 50 for an expired image
	SysCancel      bool // type 5 only: system recall
}

// Delivered identifies a stored message.
type Delivered struct {
	MsgKey uint64
	Seqno  uint64
}

// StoredMessage is a message as the conversation holds it.
type StoredMessage struct {
	SenderUID      uint64
	ReceiverType   int
	ReceiverID     uint64
	MsgType        int
	Content        string
	Seqno          uint64
	Time           time.Time
	AtUIDs         []uint64
	MsgKey         uint64
	MsgStatus      int // 0 normal, 1 recalled, 2 removed by system, 50 image expired
	SysCancel      bool
	NotifyCode     string
	NewFaceVersion int
	MsgSource      int
}

// Sent is a message an account sent successfully through send_msg.
type Sent struct {
	AccountUID   int64
	ReceiverID   uint64
	ReceiverType int
	MsgType      int
	Content      string
	DevID        string
	MsgKey       uint64
	Form         url.Values // the whole form minus csrf and csrf_token
	Query        url.Values // the signed query (w_*, wts, w_rid)
}

// Ack is one recorded update_ack call.
type Ack struct {
	SessionType int
	TalkerID    uint64
	AckSeqno    uint64 // 0 when the request left it empty (= newest)
}

// Upload is one image accepted by upload_bfs.
type Upload struct {
	AccountUID int64
	Biz        string
	Category   string
	ImageURL   string
	Width      int
	Height     int
	Bytes      []byte
}

// TextContent returns the content string of a text message:
// {"content":"..."} encoded like Bilibili (& < > as \u0026 etc.).
func TextContent(text string) string {
	b, _ := json.Marshal(struct {
		Content string `json:"content"`
	}{text})
	return string(b)
}

// ImageContent returns the content string of an image message (msg_type 2).
func ImageContent(imageURL string, width, height int, imageType string, sizeKB float64) string {
	b, _ := json.Marshal(struct {
		URL       string  `json:"url"`
		Height    int     `json:"height"`
		Width     int     `json:"width"`
		ImageType string  `json:"imageType"`
		Original  int     `json:"original"`
		Size      float64 `json:"size"`
	}{imageURL, height, width, imageType, 1, sizeKB})
	return string(b)
}

// TipContent returns the content of a msg_type 18 system tip (triple-encoded).
func TipContent(text string) string {
	inner, _ := json.Marshal([]map[string]string{{"text": text, "color_day": "#9499A0", "color_nig": "#9499A0"}})
	return TextContent(string(inner))
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// Deliver appends m to accountUID's conversation (creating it), bumping
// session_ts (µs), max_seqno and, unless the account sent it, unread_count.
// A message sent by the account marks the session read, as a send does.
// It panics if the account is unknown.
func (s *Server) Deliver(accountUID int64, m Message) Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountUID]
	if a == nil {
		panic(fmt.Sprintf("bilitest: Deliver to unknown account %d", accountUID))
	}
	if m.SessionType != 1 && m.SessionType != 2 {
		panic(fmt.Sprintf("bilitest: Deliver with session type %d", m.SessionType))
	}
	sender := uint64(m.SenderUID)
	if m.SenderUID == 0 && m.SessionType == 1 {
		sender = m.TalkerID
	}
	sm := &StoredMessage{
		SenderUID: sender, MsgType: m.MsgType, Content: m.Content, Time: m.Time,
		AtUIDs: m.AtUIDs, MsgStatus: m.MsgStatus, SysCancel: m.SysCancel,
		NotifyCode: m.NotifyCode, NewFaceVersion: m.NewFaceVersion, MsgSource: m.MsgSource,
	}
	return s.appendLocked(a, convKey{m.SessionType, m.TalkerID}, sm, m.Time.IsZero())
}

// appendLocked stores sm in the conversation; it fills receiver, seqno, key, time.
func (s *Server) appendLocked(a *account, k convKey, sm *StoredMessage, now bool) Delivered {
	c := a.conv(k)
	if k.st == 2 {
		sm.ReceiverType, sm.ReceiverID = 2, k.talker
		c.groupSeq++
		sm.Seqno = c.groupSeq
	} else {
		sm.ReceiverType = 1
		if sm.SenderUID == uint64(a.UID) {
			sm.ReceiverID = k.talker
		} else {
			sm.ReceiverID = uint64(a.UID)
		}
		s.nextSeqno += 1 + uint64(s.rng.IntN(1<<16))
		sm.Seqno = s.nextSeqno
	}
	s.nextMsgKey++
	sm.MsgKey = s.nextMsgKey
	var ts int64
	if now {
		sm.Time = time.Now()
		ts = max(micros(sm.Time), a.lastTs+1)
		sm.Time = time.UnixMicro(ts)
	} else {
		ts = micros(sm.Time)
	}
	a.lastTs = max(a.lastTs, ts)
	c.sessionTs = max(c.sessionTs, ts)
	c.msgs = append(c.msgs, sm)
	if sm.SenderUID == uint64(a.UID) {
		c.markRead(ts)
	}
	return Delivered{MsgKey: sm.MsgKey, Seqno: sm.Seqno}
}

func (a *account) conv(k convKey) *conv {
	c := a.convs[k]
	if c == nil {
		c = &conv{key: k}
		a.convs[k] = c
	}
	return c
}

func (c *conv) maxSeqno() uint64 {
	if len(c.msgs) == 0 {
		return 0
	}
	return c.msgs[len(c.msgs)-1].Seqno
}

func (c *conv) markRead(tsMicros int64) {
	c.ackSeqno = c.maxSeqno()
	c.ackTs = tsMicros
}

func (c *conv) find(key uint64) *StoredMessage {
	for _, m := range c.msgs {
		if m.MsgKey == key {
			return m
		}
	}
	return nil
}

// Recall recalls msgKey in the conversation the way its sender would: the
// target gets msg_status 1 and a msg_type 5 message (same sender) whose
// content is the bare decimal msg_key is appended.
func (s *Server) Recall(accountUID int64, talker uint64, sessionType int, msgKey uint64) (Delivered, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountUID]
	if a == nil {
		return Delivered{}, fmt.Errorf("bilitest: unknown account %d", accountUID)
	}
	c := a.convs[convKey{sessionType, talker}]
	var t *StoredMessage
	if c != nil {
		t = c.find(msgKey)
	}
	if t == nil {
		return Delivered{}, fmt.Errorf("bilitest: no message %d in %d/%d", msgKey, sessionType, talker)
	}
	t.MsgStatus = 1
	return s.appendLocked(a, c.key, &StoredMessage{
		SenderUID: t.SenderUID, MsgType: 5, Content: strconv.FormatUint(msgKey, 10), MsgSource: t.MsgSource,
	}, true), nil
}

// RemoveBySystem gives msgKey msg_status 2 (fetch no longer returns it).
// With notify a system recall (msg_type 5, sys_cancel true, content = the
// bare msg_key) is appended, as Bilibili does.
func (s *Server) RemoveBySystem(accountUID int64, talker uint64, sessionType int, msgKey uint64, notify bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountUID]
	if a == nil {
		return fmt.Errorf("bilitest: unknown account %d", accountUID)
	}
	c := a.convs[convKey{sessionType, talker}]
	var t *StoredMessage
	if c != nil {
		t = c.find(msgKey)
	}
	if t == nil {
		return fmt.Errorf("bilitest: no message %d in %d/%d", msgKey, sessionType, talker)
	}
	t.MsgStatus = 2
	if notify {
		s.appendLocked(a, c.key, &StoredMessage{
			SenderUID: t.SenderUID, MsgType: 5, Content: strconv.FormatUint(msgKey, 10), SysCancel: true, MsgSource: t.MsgSource,
		}, true)
	}
	return nil
}

// Messages returns copies of the conversation's messages, oldest first,
// including removed ones (msg_status 2).
func (s *Server) Messages(accountUID int64, sessionType int, talker uint64) []StoredMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountUID]
	if a == nil {
		return nil
	}
	c := a.convs[convKey{sessionType, talker}]
	if c == nil {
		return nil
	}
	out := make([]StoredMessage, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = *m
		out[i].AtUIDs = slices.Clone(m.AtUIDs)
	}
	return out
}

// Sent returns the messages the account sent successfully via send_msg.
func (s *Server) Sent(accountUID int64) []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[accountUID]; a != nil {
		return slices.Clone(a.sent)
	}
	return nil
}

// AckSeqno is the session's current ack_seqno (set by update_ack, by sends
// and by Deliver of the account's own messages).
func (s *Server) AckSeqno(accountUID int64, sessionType int, talker uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[accountUID]; a != nil {
		if c := a.convs[convKey{sessionType, talker}]; c != nil {
			return c.ackSeqno
		}
	}
	return 0
}

// Acks returns the update_ack calls the account made, in order.
func (s *Server) Acks(accountUID int64) []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[accountUID]; a != nil {
		return slices.Clone(a.acks)
	}
	return nil
}

// Uploads returns the images the account uploaded with upload_bfs.
func (s *Server) Uploads(accountUID int64) []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[accountUID]; a != nil {
		return slices.Clone(a.uploads)
	}
	return nil
}

// UnreadCount is the session's unread_count as the fake would report it.
func (s *Server) UnreadCount(accountUID int64, sessionType int, talker uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[accountUID]; a != nil {
		if c := a.convs[convKey{sessionType, talker}]; c != nil {
			return c.unread(a.UID)
		}
	}
	return 0
}

func (c *conv) unread(uid int64) int {
	n := 0
	for _, m := range c.msgs {
		if m.Seqno > c.ackSeqno && m.SenderUID != uint64(uid) && m.MsgStatus != 2 {
			n++
		}
	}
	return n
}
