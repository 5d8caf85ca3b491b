package bridge

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bilibridge/bilibridge/api"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/inbox"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/team"
)

// startTeam runs this process's view of the team state and makes the
// service every surface acts through.
func (b *Bridge) startTeam(ctx context.Context, t *tasks, cfg *config.Config) {
	b.Members = team.NewMembers(b.Store.Team)
	b.Projection = team.NewProjection(team.ProjectionConfig{
		Stream: b.Store.Events, KV: b.Store.Conversations, Subjects: b.Subjects, Publisher: b.pub,
		Leases: b.Store.Leases, LeaseTTL: cfg.LeaseTTL, Holder: b.holder, Logger: b.log,
	})
	t.Go("team state", func() error { return b.Projection.Run(ctx) })
	tc := team.ServiceConfig{
		Projection: b.Projection, Members: b.Members, Publisher: b.pub, Subjects: b.Subjects,
		Backfill: b.backfill, Marks: b.Store.Records,
	}
	if cfg.MarkRead {
		tc.Acker = func(ctx context.Context, key events.ConversationKey, seqno uint64) error {
			acct, err := b.account(key.AccountUID)
			if err != nil {
				return err
			}
			return acct.Client.UpdateAck(ctx, key.SessionType, key.TalkerID, seqno)
		}
	}
	b.Team = team.NewService(tc)
	b.Sessions = team.NewSessions(b.Store.Sessions, b.Members)
	b.Presence = team.NewPresence(b.Conn.NC, b.Subjects)
	t.Go("presence", func() error { return b.Presence.Run(ctx) })
}

// inbox is the browser inbox over this bridge's team.
func (b *Bridge) inbox() *inbox.Server {
	var accounts []inbox.Account
	for _, a := range b.Accounts {
		accounts = append(accounts, inbox.Account{UID: a.UID, Name: a.Name})
	}
	return inbox.New(inbox.Config{Sessions: b.Sessions, Members: b.Members, Accounts: accounts, Logger: b.log,
		Status: func(ctx context.Context) string { return b.Status(ctx).Text(time.Now()) }})
}

// api is the HTTP API over this bridge's parts; sessions are the browser
// inbox's.
func (b *Bridge) api(cfg *config.Config, sessions api.Authenticator) *api.Server {
	return api.New(api.Config{
		Token: cfg.APIToken, Members: b.Members, Sessions: sessions, Presence: b.Presence,
		Status:  func(ctx context.Context) any { return b.Status(ctx) },
		Uploads: b.Store.Uploads, UploadsURL: "http://" + localAddr(b.HTTPAddr) + "/api/v1/images",
		Outbox: b.Outbox, Team: b.Team, Projection: b.Projection, Stream: b.Store.Events,
		DeadLetters: &sinks.DeadLetters{Stream: b.Store.Events, Records: b.Store.Records, Publisher: b.pub, Subjects: b.Subjects},
		Subjects:    b.Subjects, Logger: b.log,
	})
}

// backfill reads a conversation's messages from before the bridge from
// Bilibili: n before seqno before (0: the newest), oldest first.
func (b *Bridge) backfill(ctx context.Context, key events.ConversationKey, before uint64, n int) ([]events.MessageData, error) {
	acct, err := b.account(key.AccountUID)
	if err != nil {
		return nil, err
	}
	page, err := acct.Client.FetchSessionMsgs(ctx, bilibili.FetchParams{
		SessionType: key.SessionType, TalkerID: key.TalkerID, EndSeqno: before, Size: n,
	})
	if err != nil {
		return nil, err
	}
	conv := events.Conversation{SessionType: key.SessionType, TalkerID: key.TalkerID}
	if c, err := b.Team.Get(key); err == nil {
		conv.Kind, conv.Name, conv.Avatar = c.Kind, c.Name, c.Avatar
	}
	out := make([]events.MessageData, 0, len(page.Messages))
	for i := range page.Messages {
		m := &page.Messages[i]
		ev, _ := poller.MessageEvent(poller.Source{AccountUID: key.AccountUID, Conversation: conv}, m)
		if ev.Type != events.TypeMessage {
			continue // a recall, or nothing that converts
		}
		var d events.MessageData
		if err := ev.DecodeData(&d); err != nil {
			return nil, fmt.Errorf("converting message %d: %w", m.MsgKey, err)
		}
		out = append(out, d)
	}
	// Bilibili answers newest first.
	slices.Reverse(out)
	return out, nil
}
