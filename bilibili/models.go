package bilibili

import "time"

// Session types: the `session_type` of a conversation, which is also the
// `receiver_type` of a message sent into it.
const (
	SessionUser  = 1
	SessionGroup = 2
)

// Message statuses (§2.3).
const (
	StatusNormal        = 0
	StatusRecalled      = 1
	StatusRemoved       = 2
	StatusImageExpired  = 50
	messageTypeRecall   = 5
	maxUserCardsPerCall = 50
)

// Message types the web send_msg accepts.
const (
	MsgTypeText   = 1
	MsgTypeImage  = 2
	MsgTypeRecall = messageTypeRecall
)

// Message is one DM as Bilibili returns it. Ids are integers: msg_key is
// above 2^53 and must never pass through a float.
type Message struct {
	SenderUID      int64    `json:"sender_uid"`
	ReceiverType   int      `json:"receiver_type"`
	ReceiverID     uint64   `json:"receiver_id"`
	MsgType        int      `json:"msg_type"`
	Content        string   `json:"content"`
	MsgSeqno       uint64   `json:"msg_seqno"`
	Timestamp      int64    `json:"timestamp"`
	AtUIDs         []uint64 `json:"at_uids"`
	MsgKey         uint64   `json:"msg_key"`
	MsgStatus      int      `json:"msg_status"`
	SysCancel      bool     `json:"sys_cancel,omitempty"`
	NotifyCode     string   `json:"notify_code"`
	NewFaceVersion int      `json:"new_face_version"`
	MsgSource      int      `json:"msg_source"`
}

// Time is the message's send time.
func (m *Message) Time() time.Time { return time.Unix(m.Timestamp, 0).UTC() }

// Decode decodes the message's double-encoded content.
func (m *Message) Decode() (Content, error) { return DecodeContent(m.MsgType, m.Content) }

// AccountInfo names a system session (official assistants are not users).
type AccountInfo struct {
	Name   string `json:"name"`
	PicURL string `json:"pic_url"`
}

// Session is one conversation in the session list (§2.2).
type Session struct {
	TalkerID          uint64       `json:"talker_id"`
	SessionType       int          `json:"session_type"`
	AtSeqno           uint64       `json:"at_seqno"`
	TopTS             int64        `json:"top_ts"`
	GroupName         string       `json:"group_name"`
	GroupCover        string       `json:"group_cover"`
	IsFollow          int          `json:"is_follow"`
	IsDND             int          `json:"is_dnd"`
	AckSeqno          uint64       `json:"ack_seqno"`
	AckTS             int64        `json:"ack_ts"`
	SessionTS         int64        `json:"session_ts"` // µs
	UnreadCount       int          `json:"unread_count"`
	LastMsg           *Message     `json:"last_msg"`
	GroupType         int          `json:"group_type"`
	CanFold           int          `json:"can_fold"`
	Status            int          `json:"status"`
	MaxSeqno          uint64       `json:"max_seqno"`
	NewPushMsg        int          `json:"new_push_msg"`
	Setting           int          `json:"setting"`
	IsGuardian        int          `json:"is_guardian"`
	IsIntercept       int          `json:"is_intercept"`
	IsTrust           int          `json:"is_trust"`
	SystemMsgType     int          `json:"system_msg_type"`
	AccountInfo       *AccountInfo `json:"account_info,omitempty"`
	LiveStatus        int          `json:"live_status"`
	BizMsgUnreadCount int          `json:"biz_msg_unread_count"`
}

// IsSystem reports whether the session is an official assistant.
func (s *Session) IsSystem() bool { return s.SystemMsgType != 0 || s.AccountInfo != nil }

// SessionPage is a page of new_sessions or get_sessions.
type SessionPage struct {
	Sessions []Session `json:"session_list"`
	HasMore  bool      `json:"-"`
	// SystemMsg maps a system_msg_type to its talker id (get_sessions only).
	SystemMsg map[string]uint64 `json:"system_msg,omitempty"`
}

// MessagePage is a page of fetch_session_msgs: newest first, as Bilibili
// sends it.
type MessagePage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"-"`
	// MinSeqno is 2^64-1 when the page is empty.
	MinSeqno uint64  `json:"min_seqno"`
	MaxSeqno uint64  `json:"max_seqno"`
	Emotes   []Emote `json:"e_infos"`
}

// Emote maps an inline [name] token to its image.
type Emote struct {
	Text string `json:"text"`
	URL  string `json:"url"`
	URI  string `json:"uri"` // the docs' spelling; samples use url
	Size int    `json:"size"`
}

// Unread is single_unread's answer.
type Unread struct {
	UnfollowUnread int `json:"unfollow_unread"`
	FollowUnread   int `json:"follow_unread"`
	DustbinUnread  int `json:"dustbin_unread"`
	CustomUnread   int `json:"custom_unread"`
}

// Total is every unread DM the account has outside the spam box.
func (u *Unread) Total() int { return u.UnfollowUnread + u.FollowUnread + u.CustomUnread }

// Nav is the subset of nav the bridge uses: who is logged in, and the WBI keys.
type Nav struct {
	IsLogin bool   `json:"isLogin"`
	Mid     int64  `json:"mid"`
	Uname   string `json:"uname"`
	Face    string `json:"face"`
	WbiImg  struct {
		ImgURL string `json:"img_url"`
		SubURL string `json:"sub_url"`
	} `json:"wbi_img"`
}

// UserCard is a user's public name and avatar.
type UserCard struct {
	Mid  int64  `json:"mid"`
	Name string `json:"name"`
	Face string `json:"face"`
}

// UploadedImage is an image on Bilibili's image host, ready for a type-2 message.
type UploadedImage struct {
	URL    string  `json:"image_url"`
	Width  int     `json:"image_width"`
	Height int     `json:"image_height"`
	SizeKB float64 `json:"img_size"`
}

// SendResult is send_msg's answer.
type SendResult struct {
	MsgKey     uint64 `json:"msg_key"`
	MsgContent string `json:"msg_content"`
	// KeyHit is non-empty when Bilibili showed a keyword warning; the
	// message was still sent.
	KeyHit struct {
		Toast string `json:"toast"`
	} `json:"key_hit_infos"`
}
