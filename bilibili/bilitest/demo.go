package bilitest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Demo account and talkers seeded by SeedDemo.
const (
	DemoUID      int64  = 425503913
	DemoSESSDATA        = "demo_sessdata%2C1893456000%2Cb1f2c*31"
	DemoBiliJct         = "9f1c2b3a4d5e6f708192a3b4c5d6e7f8"
	DemoSystemID uint64 = 844424930131966
	DemoGroupID  uint64 = 221082140
)

var demoUsers = []User{
	{UID: 293793435, Name: "社会易姐QwQ", Face: "https://i0.hdslb.com/bfs/face/aebb2639a0d47f2ce1fec0631f412eaf53d4a0be.jpg", FollowsAccount: true, Followed: true, Sign: "demo friend", Level: 6},
	{UID: 2239814, Name: "碧诗", Face: "https://i2.hdslb.com/bfs/face/ef0457addb24141e15dfac6fbf45293ccf1e32ab.jpg", FollowsAccount: true, Level: 6},
	{UID: 3493118494116797, Name: "路人甲", Face: "http://i1.hdslb.com/bfs/face/34c5b30a990c7ce4a809626d8153fa7895ec7b63.gif", FollowsAccount: false, Level: 2},
}

var demoTexts = []string{
	"你好！", "up主你好，\n催更[doge]", "请问什么时候更新？", "Hello from the demo <3 & thanks",
	"这个视频太棒了[笑哭]", "在吗", "收到，谢谢~", "A longer message: " + "lorem ipsum dolor sit amet, consectetur adipiscing elit. ",
}

// SeedDemo adds the demo account (DemoUID, DemoSESSDATA, DemoBiliJct), three
// users (one a stranger), the system talker UP主小助手, a fan group, and a
// little history in each conversation. It returns the account.
func (s *Server) SeedDemo() Account {
	acc := Account{UID: DemoUID, Name: "bilifake-demo", Face: "https://i0.hdslb.com/bfs/face/member/noface.jpg",
		SESSDATA: DemoSESSDATA, BiliJct: DemoBiliJct}
	s.AddAccount(acc)
	for _, u := range demoUsers {
		s.AddUser(u)
	}
	s.AddSystem(System{TalkerID: DemoSystemID, Name: "UP主小助手",
		PicURL: "https://message.biliimg.com/bfs/im/489a63efadfb202366c2f88853d2217b5ddc7a13.png", SystemMsgType: 7})
	s.AddGroup(Group{ID: DemoGroupID, Name: "bilifake-demo的应援团", Cover: "http://i0.hdslb.com/bfs/face/aebb2639a0d47f2ce1fec0631f412eaf53d4a0be.jpg"})

	t0 := time.Now().Add(-2 * time.Hour)
	at := func(m time.Duration) time.Time { return t0.Add(m * time.Minute) }
	u0, u1 := demoUsers[0].UID, demoUsers[1].UID
	s.Deliver(DemoUID, Message{SessionType: 1, TalkerID: uint64(u0), MsgType: 1, Content: TextContent("你好，第一次私信~"), MsgSource: 2, Time: at(0), NewFaceVersion: 1})
	s.Deliver(DemoUID, Message{SessionType: 1, TalkerID: uint64(u0), SenderUID: DemoUID, MsgType: 1, Content: TextContent("你好！"), MsgSource: 1, Time: at(2)})
	s.Deliver(DemoUID, Message{SessionType: 1, TalkerID: uint64(u1), MsgType: 2, MsgSource: 7, Time: at(10),
		Content: ImageContent("https://message.biliimg.com/bfs/im_new/c161fdf51d901c1607a15e30f10116dd425503913.jpg", 300, 300, "jpeg", 55.443)})
	s.Deliver(DemoUID, Message{SessionType: 1, TalkerID: DemoSystemID, MsgType: 10, MsgSource: 6, Time: at(20), NotifyCode: "2091_253", NewFaceVersion: 1,
		Content: `{"title":"流量奖励到账通知","text":"恭喜您已获得2000流量曝光奖励，快来投稿使用吧。","jump_text":"","jump_uri":"","modules":null,"jump_text_2":"","jump_uri_2":"","jump_text_3":"","jump_uri_3":"","notifier":null,"jump_uri_config":{"all_uri":"https://member.bilibili.com/york/flow-reward?navhide=1\u0026from=msgrecall","text":""},"jump_uri_2_config":{"text":""},"jump_uri_3_config":{"text":""},"biz_content":null}`})
	s.Deliver(DemoUID, Message{SessionType: 2, TalkerID: DemoGroupID, SenderUID: 0, MsgType: 306, MsgSource: 13, Time: at(30),
		Content: fmt.Sprintf(`{"group_id":%d,"content":"欢迎%s入群"}`, DemoGroupID, demoUsers[1].Name)})
	s.Deliver(DemoUID, Message{SessionType: 2, TalkerID: DemoGroupID, SenderUID: u1, MsgType: 1, MsgSource: 2, Time: at(31),
		Content: TextContent("大家好[doge]")})
	return acc
}

// DeliverRandom delivers a random message from a random talker (a seeded
// user, the fan group or the system talker) to accountUID and returns it.
// SeedDemo must have run (or equivalent users/groups must exist).
func (s *Server) DeliverRandom(accountUID int64, r *rand.Rand) (Message, Delivered) {
	var m Message
	text := demoTexts[r.IntN(len(demoTexts))] + " #" + strconv.Itoa(r.IntN(10000))
	switch n := r.IntN(10); {
	case n < 6:
		u := demoUsers[r.IntN(len(demoUsers))]
		m = Message{SessionType: 1, TalkerID: uint64(u.UID), MsgType: 1, Content: TextContent(text), MsgSource: 1 + r.IntN(4), NewFaceVersion: 1}
		if r.IntN(5) == 0 {
			m.MsgType = 2
			m.Content = ImageContent("https://message.biliimg.com/bfs/im_new/c161fdf51d901c1607a15e30f10116dd425503913.jpg", 300, 300, "jpeg", 55.443)
		}
	case n < 8:
		u := demoUsers[r.IntN(2)]
		m = Message{SessionType: 2, TalkerID: DemoGroupID, SenderUID: u.UID, MsgType: 1, Content: TextContent(text), MsgSource: 2}
	case n < 9:
		m = Message{SessionType: 2, TalkerID: DemoGroupID, MsgType: 301, MsgSource: 13,
			Content: fmt.Sprintf(`{"group_id":%d,"content":"%s加入了应援团"}`, DemoGroupID, demoUsers[r.IntN(len(demoUsers))].Name)}
	default:
		m = Message{SessionType: 1, TalkerID: DemoSystemID, MsgType: 10, MsgSource: 6, NotifyCode: "2091_253",
			Content: `{"title":"稿件审核通过","text":"你的稿件已通过审核。","jump_text":"","jump_uri":"","modules":null,"jump_text_2":"","jump_uri_2":"","jump_text_3":"","jump_uri_3":"","notifier":null,"jump_uri_config":{"text":""},"jump_uri_2_config":{"text":""},"jump_uri_3_config":{"text":""},"biz_content":null}`}
	}
	return m, s.Deliver(accountUID, m)
}

// Traffic delivers a random message (DeliverRandom) to the account every
// interval until ctx ends, telling delivered about each when it is not
// nil. It is what the demo and `bilifake -traffic` run.
func (s *Server) Traffic(ctx context.Context, accountUID int64, every time.Duration, delivered func(Message, Delivered)) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m, d := s.DeliverRandom(accountUID, r)
			if delivered != nil {
				delivered(m, d)
			}
		}
	}
}
