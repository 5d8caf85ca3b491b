package bilitest

import (
	"cmp"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Wire shapes, field order as in the fixtures.

type wireMsg struct {
	SenderUID      uint64   `json:"sender_uid"`
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
	NewFaceVersion int      `json:"new_face_version,omitempty"`
	MsgSource      int      `json:"msg_source"`
}

type accountInfo struct {
	Name   string `json:"name"`
	PicURL string `json:"pic_url"`
}

type wireSession struct {
	TalkerID          uint64       `json:"talker_id"`
	SessionType       int          `json:"session_type"`
	AtSeqno           uint64       `json:"at_seqno"`
	TopTs             int64        `json:"top_ts"`
	GroupName         string       `json:"group_name"`
	GroupCover        string       `json:"group_cover"`
	IsFollow          int          `json:"is_follow"`
	IsDnd             int          `json:"is_dnd"`
	AckSeqno          uint64       `json:"ack_seqno"`
	AckTs             int64        `json:"ack_ts"`
	SessionTs         int64        `json:"session_ts"`
	UnreadCount       int          `json:"unread_count"`
	LastMsg           *wireMsg     `json:"last_msg"`
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
	AccountInfo       *accountInfo `json:"account_info,omitempty"`
	LiveStatus        int          `json:"live_status"`
	BizMsgUnreadCount int          `json:"biz_msg_unread_count"`
	UserLabel         *struct{}    `json:"user_label"`
}

type sessionList struct {
	SessionList         []wireSession     `json:"session_list"`
	HasMore             int               `json:"has_more"`
	AntiDisturbCleaning bool              `json:"anti_disturb_cleaning"`
	IsAddressListEmpty  int               `json:"is_address_list_empty"`
	SystemMsg           map[string]uint64 `json:"system_msg,omitempty"`
	ShowLevel           bool              `json:"show_level"`
}

func toWire(m *StoredMessage) *wireMsg {
	return &wireMsg{
		SenderUID: m.SenderUID, ReceiverType: m.ReceiverType, ReceiverID: m.ReceiverID,
		MsgType: m.MsgType, Content: m.Content, MsgSeqno: m.Seqno, Timestamp: m.Time.Unix(),
		AtUIDs: m.AtUIDs, MsgKey: m.MsgKey, MsgStatus: m.MsgStatus, SysCancel: m.SysCancel && m.MsgType == 5,
		NotifyCode: m.NotifyCode, NewFaceVersion: m.NewFaceVersion, MsgSource: m.MsgSource,
	}
}

// sessionLocked renders a conversation as a session object (s.mu held).
func (s *Server) sessionLocked(a *account, c *conv) wireSession {
	ws := wireSession{
		TalkerID: c.key.talker, SessionType: c.key.st, AckSeqno: c.ackSeqno, AckTs: c.ackTs,
		SessionTs: c.sessionTs, UnreadCount: c.unread(a.UID), MaxSeqno: c.maxSeqno(),
	}
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].MsgStatus != 2 {
			ws.LastMsg = toWire(c.msgs[i])
			break
		}
	}
	if c.key.st == 2 {
		if g := s.groups[c.key.talker]; g != nil {
			ws.GroupName, ws.GroupCover = g.Name, g.Cover
		}
		for i := len(c.msgs) - 1; i >= 0 && c.msgs[i].Seqno > c.ackSeqno; i-- {
			if slices.Contains(c.msgs[i].AtUIDs, uint64(a.UID)) {
				ws.AtSeqno = c.msgs[i].Seqno
				break
			}
		}
		return ws
	}
	if sys := s.systems[c.key.talker]; sys != nil {
		ws.IsFollow = 1
		ws.SystemMsgType = sys.SystemMsgType
		ws.AccountInfo = &accountInfo{Name: sys.Name, PicURL: sys.PicURL}
		if ws.UnreadCount > 0 {
			ws.NewPushMsg = 1
		}
		return ws
	}
	if u := s.users[int64(c.key.talker)]; u != nil && u.Followed {
		ws.IsFollow = 1
	}
	if ws.IsFollow == 0 {
		ws.CanFold = 1
	}
	return ws
}

// sessionsLocked returns the account's sessions, newest session_ts first,
// ties broken by talker id for a stable order.
func (s *Server) sessionsLocked(a *account, keep func(ws *wireSession) bool) []wireSession {
	var out []wireSession
	for _, c := range a.convs {
		ws := s.sessionLocked(a, c)
		if keep == nil || keep(&ws) {
			out = append(out, ws)
		}
	}
	slices.SortFunc(out, func(x, y wireSession) int {
		if c := cmp.Compare(y.SessionTs, x.SessionTs); c != 0 {
			return c
		}
		if c := cmp.Compare(x.SessionType, y.SessionType); c != 0 {
			return c
		}
		return cmp.Compare(x.TalkerID, y.TalkerID)
	})
	return out
}

// optional integer query parameters: missing → def; malformed → ok false.
func qInt(r *http.Request, name string, def int64) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func qUint(r *http.Request, name string) (uint64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

func pageSize(r *http.Request) (int, bool) {
	n, ok := qInt(r, "size", 20)
	if !ok || n < 0 {
		return 0, false
	}
	if n == 0 {
		n = 20
	}
	return int(min(n, 100)), true
}

func (s *Server) handleNewSessions(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	begin, ok1 := qInt(r, "begin_ts", 0)
	size, ok2 := pageSize(r)
	if !ok1 || !ok2 {
		s.writeErr(w, ep, -400)
		return
	}
	s.mu.Lock()
	list := s.sessionsLocked(a, func(ws *wireSession) bool { return ws.SessionTs > begin })
	s.mu.Unlock()
	data := sessionList{}
	if len(list) > size {
		list, data.HasMore = list[:size], 1
	}
	data.SessionList = list
	s.writeOK(w, ep, data)
}

func (s *Server) handleGetSessions(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	st, ok1 := qInt(r, "session_type", 0)
	begin, ok2 := qInt(r, "begin_ts", 0)
	end, ok3 := qInt(r, "end_ts", 0)
	size, ok4 := pageSize(r)
	if !ok1 || !ok2 || !ok3 || !ok4 || st < 1 || st > 9 {
		s.writeErr(w, ep, -400)
		return
	}
	s.mu.Lock()
	hasSystem := false
	list := s.sessionsLocked(a, func(ws *wireSession) bool {
		if ws.SessionTs <= begin || (end > 0 && ws.SessionTs >= end) {
			return false
		}
		sys, group := ws.SystemMsgType != 0, ws.SessionType == 2
		var keep bool
		switch st {
		case 1:
			keep = !group
		case 2, 8:
			keep = !group && !sys && ws.IsFollow == 0
		case 3:
			keep = group
		case 4:
			keep = true
		case 7:
			keep = sys
		case 9:
			keep = !group && ws.IsFollow == 1
		}
		if keep && sys {
			hasSystem = true
		}
		return keep
	})
	var sysMap map[string]uint64
	if hasSystem {
		sysMap = map[string]uint64{}
		for _, sys := range s.systems {
			sysMap[strconv.Itoa(sys.SystemMsgType)] = sys.TalkerID
		}
	}
	s.mu.Unlock()
	data := sessionList{SystemMsg: sysMap, ShowLevel: true}
	if len(list) > size {
		list, data.HasMore = list[:size], 1
	}
	data.SessionList = list
	s.writeOK(w, ep, data)
}

func (s *Server) handleSessionDetail(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	talker, ok1 := qUint(r, "talker_id")
	st, ok2 := qInt(r, "session_type", 0)
	if !ok1 || !ok2 || talker == 0 || (st != 1 && st != 2) {
		s.writeErr(w, ep, -400)
		return
	}
	s.mu.Lock()
	c := a.convs[convKey{int(st), talker}]
	var ws wireSession
	if c != nil {
		ws = s.sessionLocked(a, c)
	}
	s.mu.Unlock()
	if c == nil {
		s.writeErr(w, ep, 1000004)
		return
	}
	s.writeOK(w, ep, ws)
}

func (s *Server) handleSingleUnread(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	type unread struct {
		UnfollowUnread       int `json:"unfollow_unread"`
		FollowUnread         int `json:"follow_unread"`
		UnfollowPushMsg      int `json:"unfollow_push_msg"`
		DustbinPushMsg       int `json:"dustbin_push_msg"`
		DustbinUnread        int `json:"dustbin_unread"`
		BizMsgUnfollowUnread int `json:"biz_msg_unfollow_unread"`
		BizMsgFollowUnread   int `json:"biz_msg_follow_unread"`
		CustomUnread         int `json:"custom_unread"`
	}
	var d unread
	s.mu.Lock()
	for _, ws := range s.sessionsLocked(a, nil) {
		if ws.SessionType != 1 {
			continue
		}
		if ws.IsFollow == 1 {
			d.FollowUnread += ws.UnreadCount
		} else {
			d.UnfollowUnread += ws.UnreadCount
		}
	}
	s.mu.Unlock()
	s.writeOK(w, ep, d)
}

func (s *Server) handleMyGroupUnread(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	n := 0
	s.mu.Lock()
	for k, c := range a.convs {
		if k.st == 2 {
			n += c.unread(a.UID)
		}
	}
	s.mu.Unlock()
	s.writeOK(w, ep, map[string]int{"unread_count": n})
}

type eInfo struct {
	Text string `json:"text"`
	URL  string `json:"url"`
	Size int    `json:"size"`
}

var emoteRe = regexp.MustCompile(`\[[^\[\]]{1,12}\]`)

// emoteInfos returns e_infos for the [emote] names in text contents (nil if none).
func emoteInfos(contents ...string) []eInfo {
	var out []eInfo
	seen := map[string]bool{}
	for _, c := range contents {
		for _, e := range emoteRe.FindAllString(c, -1) {
			if seen[e] {
				continue
			}
			seen[e] = true
			out = append(out, eInfo{Text: e, URL: "http://i0.hdslb.com/bfs/emote/" + sha1Hex([]byte(e)) + ".png", Size: 1})
		}
	}
	return out
}

func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	if !s.verifyWBI(r.URL.Query()) {
		s.writeEnv(w, ep, -352, codeMessage(-352), map[string]string{"v_voucher": "voucher_" + newUUID()})
		return
	}
	talker, ok1 := qUint(r, "talker_id")
	st, ok2 := qInt(r, "session_type", 0)
	begin, ok3 := qUint(r, "begin_seqno")
	end, ok4 := qUint(r, "end_seqno")
	size, ok5 := qInt(r, "size", 0)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || talker == 0 || (st != 1 && st != 2) || size < 0 {
		s.writeErr(w, ep, -400)
		return
	}
	if st == 2 {
		s.mu.Lock()
		member := s.groups[talker] != nil || a.convs[convKey{2, talker}] != nil
		s.mu.Unlock()
		if !member {
			s.writeErr(w, ep, 700014)
			return
		}
	}
	size = min(size, 2000)
	type fetchData struct {
		Messages []*wireMsg `json:"messages"`
		HasMore  int        `json:"has_more"`
		MinSeqno uint64     `json:"min_seqno"`
		MaxSeqno uint64     `json:"max_seqno"`
		EInfos   []eInfo    `json:"e_infos,omitempty"`
	}
	d := fetchData{MinSeqno: maxUint64}
	s.mu.Lock()
	var inRange []*StoredMessage // newest first
	if c := a.convs[convKey{int(st), talker}]; c != nil {
		for i := len(c.msgs) - 1; i >= 0; i-- {
			m := c.msgs[i]
			if m.MsgStatus == 2 || m.Seqno <= begin || (end != 0 && m.Seqno >= end) {
				continue
			}
			if size == 0 && m.MsgSource != 18 {
				continue // quirk: size 0 returns only system tips
			}
			inRange = append(inRange, m)
		}
	}
	limit := int(size)
	if size == 0 {
		limit = len(inRange)
	}
	if len(inRange) > limit {
		inRange, d.HasMore = inRange[:limit], 1
	}
	var texts []string
	for _, m := range inRange {
		d.Messages = append(d.Messages, toWire(m))
		d.MinSeqno = min(d.MinSeqno, m.Seqno)
		d.MaxSeqno = max(d.MaxSeqno, m.Seqno)
		if m.MsgType == 1 {
			texts = append(texts, m.Content)
		}
	}
	s.mu.Unlock()
	d.EInfos = emoteInfos(texts...)
	s.writeOK(w, ep, d)
}

func (s *Server) handleUpdateAck(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil || !s.checkCSRF(w, r, ep, a, true) {
		return
	}
	talker, err1 := strconv.ParseUint(r.PostFormValue("talker_id"), 10, 64)
	st, err2 := strconv.Atoi(r.PostFormValue("session_type"))
	var ack uint64
	var err3 error
	if v := r.PostFormValue("ack_seqno"); v != "" {
		ack, err3 = strconv.ParseUint(v, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || talker == 0 || (st != 1 && st != 2) {
		s.writeErr(w, ep, -400)
		return
	}
	s.mu.Lock()
	a.acks = append(a.acks, Ack{SessionType: st, TalkerID: talker, AckSeqno: ack})
	if c := a.convs[convKey{st, talker}]; c != nil {
		if ack == 0 {
			ack = c.maxSeqno()
		}
		c.ackSeqno = min(ack, c.maxSeqno())
		c.ackTs = time.Now().UnixMicro()
	}
	s.mu.Unlock()
	s.writeOK(w, ep, struct{}{})
}
