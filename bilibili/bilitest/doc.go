// Package bilitest is a stateful fake of Bilibili's web IM API that speaks the
// real wire format (shapes as in shared/fixtures/bilibili). Every test,
// benchmark and the demo mode of bilibridge talks to it instead of Bilibili.
//
// It is deliberately an independent implementation: it does not import the
// bilibili client package, and it verifies WBI signatures with its own code,
// so it can catch client bugs rather than mirror them.
//
// One server answers every host's paths, so a client is pointed at it with
// BILI_API_URL = BILI_MAIN_API_URL = BILI_PASSPORT_URL = BILI_WWW_URL = s.URL().
//
// Typical use in a test:
//
//	s := bilitest.NewServer()
//	defer s.Close()
//	s.AddAccount(bilitest.Account{UID: 425503913, Name: "me", SESSDATA: "sess", BiliJct: "jct"})
//	s.AddUser(bilitest.User{UID: 293793435, Name: "peer", FollowsAccount: true})
//	d := s.Deliver(425503913, bilitest.Message{SessionType: 1, TalkerID: 293793435,
//		MsgType: 1, Content: bilitest.TextContent("hello")})
//	// ... run the client against s.URL() with cookies SESSDATA=sess, bili_jct=jct ...
//	s.Fail("send_msg", 2, bilitest.Fault{Code: 21020}) // next two sends: "too fast"
//	_ = s.Sent(425503913)                               // what the client sent
//
// Endpoints served (names as accepted by Fail, Calls and LastRequestHeader
// are the last path element): nav, new_sessions, get_sessions,
// session_detail, single_unread, my_group_unread, fetch_session_msgs,
// update_ack, send_msg, cards, upload_bfs.
//
// Requests whose User-Agent is empty or contains "Go-http-client", "python"
// or "curl" are answered with code -412 (HTTP 200), as Bilibili's risk control
// does; SetUserAgentCheck(false) turns that off.
//
// Demo server: `go run ./cmd/bilifake -addr 127.0.0.1:8081 -traffic 5s`
// serves a seeded demo account (see SeedDemo), prints the environment
// variables (URLs, BILI_UID, BILI_SESSDATA, BILI_JCT) a bilibridge needs to
// use it, and with -traffic injects a random message from a random talker
// at that interval.
package bilitest
