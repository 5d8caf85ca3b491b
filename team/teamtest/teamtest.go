// Package teamtest runs the team state of bridge processes on a real
// embedded JetStream, for the tests of the team, its API and the inbox.
package teamtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/team"
)

// The account and the conversation most tests use.
const (
	UID    int64  = 425503913
	Talker uint64 = 293793435
	// Name is the fan's display name.
	Name = "社会易姐QwQ"
)

// Conv is the conversation most tests use.
var Conv = events.ConversationKey{AccountUID: UID, SessionType: 1, TalkerID: Talker}

// Rig is one JetStream with the bridge's streams and buckets, on which
// tests start the team state of one or more bridge processes.
type Rig struct {
	T     testing.TB
	Conn  *bus.Conn
	Store *bus.Store
	Pub   *bus.Publisher
	// Members is the team, in the rig's bucket.
	Members *team.Members

	mu  sync.Mutex
	key uint64
}

// New starts an embedded NATS server and provisions it.
func New(t testing.TB) *Rig {
	t.Helper()
	conn := bustest.StartServer(t).Connect(t)
	st := bustest.Provision(t, conn, time.Second)
	return &Rig{T: t, Conn: conn, Store: st, Pub: &bus.Publisher{JS: conn.JS}, Members: team.NewMembers(st.Team), key: 7354295169819585000}
}

// AddMember adds a member (role agent unless given) and returns a personal
// token of theirs.
func (r *Rig) AddMember(name string, role team.Role) string {
	r.T.Helper()
	ctx := context.Background()
	if err := r.Members.Add(ctx, team.Member{Name: name, Role: role}, team.GeneratePassword()); err != nil {
		r.T.Fatal(err)
	}
	tok, err := r.Members.NewToken(ctx, name)
	if err != nil {
		r.T.Fatal(err)
	}
	return tok
}

// Process is the team state of one bridge process.
type Process struct {
	Projection *team.Projection
	Service    *team.Service
}

// Options are a process's optional parts.
type Options struct {
	// Members is the team the service knows; default the rig's.
	Members  team.MemberDirectory
	Backfill team.Backfill
	Acker    team.Acker
	Now      func() time.Time
}

// Process starts a projection and a service as a bridge process does, and
// waits until the projection caught up; it stops when the test ends.
func (r *Rig) Process(o Options) Process {
	r.T.Helper()
	if o.Members == nil {
		o.Members = r.Members
	}
	p := team.NewProjection(team.ProjectionConfig{
		Stream: r.Store.Events, KV: r.Store.Conversations, Publisher: r.Pub,
		Leases: r.Store.Leases, LeaseTTL: time.Second, SaveEvery: 50 * time.Millisecond, Now: o.Now,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	r.T.Cleanup(func() { cancel(); <-done })
	s := team.NewService(team.ServiceConfig{
		Projection: p, Publisher: r.Pub, Members: o.Members,
		Backfill: o.Backfill, Marks: r.Store.Records, Acker: o.Acker, Now: o.Now,
	})
	bustest.Eventually(r.T, "the projection up to date", p.Ready)
	return Process{Projection: p, Service: s}
}

// Message publishes a text message in conversation k, incoming or
// outgoing ("in", "out"), and returns its msg_key; its seqno is the
// msg_key modulo 1,000,000.
func (r *Rig) Message(k events.ConversationKey, direction, text string) uint64 {
	r.T.Helper()
	r.mu.Lock()
	r.key++
	key := r.key
	r.mu.Unlock()
	at := time.Now().UTC()
	name := Name
	if k.TalkerID != Talker {
		name = "fan " + k.String()
	}
	ev, err := events.New(k.AccountUID, events.TypeMessage, events.MessageID(k.AccountUID, key), k.Subject(), at, events.MessageData{
		AccountUID:   k.AccountUID,
		Conversation: events.Conversation{SessionType: k.SessionType, TalkerID: k.TalkerID, Kind: "user", Name: name},
		Message: events.Message{MsgKey: key, Seqno: key % 1_000_000, Direction: direction, SenderUID: int64(k.TalkerID),
			Timestamp: at, MsgType: 1, Kind: events.KindText, Text: text, Status: events.StatusNormal},
	})
	if err != nil {
		r.T.Fatal(err)
	}
	if err := r.Pub.Publish(context.Background(), events.Subjects{}.Message(k.AccountUID, k.SessionType, k.TalkerID), ev); err != nil {
		r.T.Fatal(err)
	}
	return key
}

// Recall publishes the recall of message msgKey of conversation k, as
// the poller does when the sender takes it back.
func (r *Rig) Recall(k events.ConversationKey, msgKey uint64) {
	r.T.Helper()
	r.mu.Lock()
	r.key++
	key := r.key
	r.mu.Unlock()
	at := time.Now().UTC()
	ev, err := events.New(k.AccountUID, events.TypeRecall, events.MessageID(k.AccountUID, key), k.Subject(), at, events.RecallData{
		AccountUID:     k.AccountUID,
		Conversation:   events.Conversation{SessionType: k.SessionType, TalkerID: k.TalkerID, Kind: "user"},
		RecalledMsgKey: msgKey,
		SenderUID:      int64(k.TalkerID),
		Timestamp:      at,
	})
	if err != nil {
		r.T.Fatal(err)
	}
	if err := r.Pub.Publish(context.Background(), events.Subjects{}.Recall(k.AccountUID, k.SessionType, k.TalkerID), ev); err != nil {
		r.T.Fatal(err)
	}
}

// TeamEvents are the team events of conversation k on the stream, in order.
func (r *Rig) TeamEvents(k events.ConversationKey) []events.Event {
	r.T.Helper()
	var out []events.Event
	for _, m := range bustest.StreamEvents(r.T, r.Store.Events) {
		if m.Subject == (events.Subjects{}).Team(k.AccountUID, k.SessionType, k.TalkerID) {
			out = append(out, m.Event)
		}
	}
	return out
}
