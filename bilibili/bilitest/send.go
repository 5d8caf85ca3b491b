package bilitest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// recallWindow is how long after sending a message may be recalled.
const recallWindow = 120 * time.Second

func newUUID() string { return uuid.NewString() }

func (s *Server) handleSendMsg(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil || !s.checkCSRF(w, r, ep, a, true) {
		return
	}
	q := r.URL.Query()
	if !s.verifyWBI(q) {
		s.writeErr(w, ep, -400)
		return
	}
	code, data := s.send(a, q, r.PostForm)
	if code != 0 {
		s.writeErr(w, ep, code)
		return
	}
	s.writeOK(w, ep, data)
}

type sendData struct {
	MsgKey      uint64    `json:"msg_key"`
	EInfos      []eInfo   `json:"e_infos,omitempty"`
	MsgContent  string    `json:"msg_content,omitempty"`
	KeyHitInfos *struct{} `json:"key_hit_infos,omitempty"`
}

// send validates and performs a send; it returns a Bilibili code.
func (s *Server) send(a *account, q url.Values, form url.Values) (int, any) {
	f := func(k string) string { return form.Get("msg[" + k + "]") }
	sender, err := strconv.ParseInt(f("sender_uid"), 10, 64)
	if err != nil || sender != a.UID || q.Get("w_sender_uid") != f("sender_uid") {
		return -400, nil
	}
	receiver, err := strconv.ParseUint(f("receiver_id"), 10, 64)
	if err != nil || receiver == 0 || q.Get("w_receiver_id") != f("receiver_id") {
		return -400, nil
	}
	rtype, err := strconv.Atoi(f("receiver_type"))
	if err != nil || (rtype != 1 && rtype != 2) {
		return -400, nil
	}
	devID := f("dev_id")
	if _, err := uuid.Parse(devID); err != nil || len(devID) != 36 || q.Get("w_dev_id") != devID {
		return -400, nil
	}
	if _, err := strconv.ParseInt(f("timestamp"), 10, 64); err != nil {
		return -400, nil
	}
	msgType, err := strconv.Atoi(f("msg_type"))
	if err != nil {
		return -400, nil
	}
	if msgType != 1 && msgType != 2 && msgType != 5 {
		return 21035, nil
	}
	content := f("content")
	if len(content) > 2000 {
		return 21007, nil
	}
	if rtype == 1 && receiver == uint64(a.UID) {
		return 21026, nil
	}
	nfv, _ := strconv.Atoi(f("new_face_version"))

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.sendInterval > 0 && !a.lastSend.IsZero() && now.Sub(a.lastSend) < s.sendInterval {
		return 21020, nil
	}
	key := convKey{rtype, receiver}
	c := a.convs[key]
	if rtype == 2 && s.groups[receiver] == nil && c == nil {
		return 700014, nil // not a member: neither added with AddGroup nor delivered to
	}

	var target *StoredMessage
	switch msgType {
	case 1:
		var tc struct {
			Content *string `json:"content"`
		}
		if json.Unmarshal([]byte(content), &tc) != nil || tc.Content == nil || strings.TrimSpace(*tc.Content) == "" {
			return -400, nil
		}
		if utf8.RuneCountInString(*tc.Content) > 500 {
			return 21007, nil
		}
	case 2:
		var ic struct {
			URL string `json:"url"`
		}
		if json.Unmarshal([]byte(content), &ic) != nil || ic.URL == "" {
			return -400, nil
		}
		if !biliImageHost(ic.URL) {
			return 21037, nil
		}
	case 5:
		mk, err := strconv.ParseUint(strings.TrimSpace(content), 10, 64)
		if err != nil {
			return -400, nil
		}
		if c != nil {
			target = c.find(mk)
		}
		if target == nil || target.SenderUID != uint64(a.UID) || target.MsgType == 5 || target.MsgStatus == 2 {
			return 10005, nil
		}
		if target.MsgStatus == 1 {
			return 21042, nil
		}
		if now.Sub(target.Time) > recallWindow {
			return 21041, nil
		}
	}
	if rtype == 1 && msgType != 5 && s.systems[receiver] == nil {
		u := s.users[int64(receiver)]
		if u == nil || !u.FollowsAccount {
			talkerSpoke, mine := false, 0
			if c != nil {
				for _, m := range c.msgs {
					if m.SenderUID == receiver {
						talkerSpoke = true
					} else if m.SenderUID == uint64(a.UID) && m.MsgType != 5 {
						mine++
					}
				}
			}
			if !talkerSpoke && mine >= 1 {
				return 21047, nil
			}
		}
	}

	if target != nil {
		target.MsgStatus = 1
	}
	d := s.appendLocked(a, key, &StoredMessage{
		SenderUID: uint64(a.UID), MsgType: msgType, Content: content, MsgSource: 7, NewFaceVersion: nfv,
	}, true)
	a.lastSend = now
	clean := url.Values{}
	for k, v := range form {
		if k != "csrf" && k != "csrf_token" {
			clean[k] = append([]string(nil), v...)
		}
	}
	a.sent = append(a.sent, Sent{
		AccountUID: a.UID, ReceiverID: receiver, ReceiverType: rtype, MsgType: msgType,
		Content: content, DevID: devID, MsgKey: d.MsgKey, Form: clean, Query: q,
	})
	out := sendData{MsgKey: d.MsgKey}
	if msgType == 1 {
		out.MsgContent = content
		out.EInfos = emoteInfos(content)
		if rtype == 1 {
			out.KeyHitInfos = &struct{}{}
		}
	}
	return 0, out
}

// biliImageHost reports whether u is on a Bilibili image host.
func biliImageHost(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") {
		return false
	}
	h := strings.ToLower(p.Hostname())
	for _, d := range []string{"hdslb.com", "biliimg.com"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}
