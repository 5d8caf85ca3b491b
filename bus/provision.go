package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/events"
)

// Stream and bucket names.
const (
	StreamEvents  = "BILI"
	StreamOutbox  = "BILI_OUTBOX"
	BucketCursors = "bili_cursors"
	BucketLeases  = "bili_leases"
	BucketState   = "bili_state"
	BucketRecords = "bili_records"
	// BucketTeam holds the team: members, their password and token hashes.
	BucketTeam = "bili_team"
	// BucketSessions holds browser sessions; each expires SessionTTL after
	// its last use.
	BucketSessions = "bili_sessions"
	// BucketConversations holds the team's view of every conversation, a
	// projection of stream BILI that can be rebuilt from it.
	BucketConversations = "bili_conversations"
	// BucketUploads (an object store) holds images pasted in the browser
	// inbox for UploadTTL.
	BucketUploads = "bili_uploads"
)

// SessionTTL is how long an unused browser session lasts.
const SessionTTL = 30 * 24 * time.Hour

// UploadTTL is how long an image pasted in the browser inbox is kept: the
// sender fetches it within seconds, or retries for minutes.
const UploadTTL = 24 * time.Hour

// StoreConfig sizes the streams and buckets.
type StoreConfig struct {
	Subjects events.Subjects
	Replicas int
	// MaxAge bounds how long events stay in BILI; default 30 days.
	MaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers event ids. The
	// persisted cursors are the first line against duplicates; the window
	// covers a crash between a publish and the cursor save. Default 1h.
	DuplicateWindow time.Duration
	// LeaseTTL is how long a poller lease lives without renewal.
	LeaseTTL time.Duration
}

// Store is what Provision created.
type Store struct {
	Events  jetstream.Stream
	Outbox  jetstream.Stream
	Cursors jetstream.KeyValue
	Leases  jetstream.KeyValue
	// State holds what must last: sinks' mappings (topics, threads),
	// offsets, members.
	State jetstream.KeyValue
	// Records holds what is only needed while the events it is about are
	// in the stream: command outcomes, message maps, delivery failures.
	// Each key expires MaxAge after its last write.
	Records jetstream.KeyValue
	// Team, Sessions and Conversations are the team inbox's (see the
	// bucket constants).
	Team, Sessions, Conversations jetstream.KeyValue
	// Uploads holds images pasted in the browser inbox until the sender
	// has sent them (a day).
	Uploads jetstream.ObjectStore
}

// Provision creates or updates the streams and KV buckets. It is
// idempotent; a setting NATS cannot change in place (storage type) is
// reported, not forced.
func Provision(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 30 * 24 * time.Hour
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = time.Hour
	}
	cfg.DuplicateWindow = min(cfg.DuplicateWindow, cfg.MaxAge)
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	var st Store
	var err error
	st.Events, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "bilibridge events: DMs, recalls, send results, account status, dead letters",
		Subjects:    cfg.Subjects.Events(),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
	})
	if err != nil {
		return nil, err
	}
	st.Outbox, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamOutbox,
		Description: "bilibridge send commands (work queue, de-duplicated by command_id)",
		Subjects:    []string{cfg.Subjects.Outbox()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	for _, b := range []struct {
		dst *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&st.Cursors, jetstream.KeyValueConfig{Bucket: BucketCursors, Description: "poller cursors", History: 1}},
		// A lease is a key that expires with the bucket's TTL unless renewed.
		{&st.Leases, jetstream.KeyValueConfig{Bucket: BucketLeases, Description: "poller leases", History: 1, TTL: cfg.LeaseTTL}},
		{&st.State, jetstream.KeyValueConfig{Bucket: BucketState, Description: "sink mappings, offsets and other lasting state", History: 1}},
		{&st.Records, jetstream.KeyValueConfig{Bucket: BucketRecords, Description: "command outcomes, message maps and delivery failures; they expire with the events", History: 1, TTL: cfg.MaxAge}},
		{&st.Team, jetstream.KeyValueConfig{Bucket: BucketTeam, Description: "team members and their credentials (hashes only)", History: 1}},
		{&st.Sessions, jetstream.KeyValueConfig{Bucket: BucketSessions, Description: "browser sessions of team members", History: 1, TTL: SessionTTL}},
		{&st.Conversations, jetstream.KeyValueConfig{Bucket: BucketConversations, Description: "the team's view of each conversation, rebuilt from stream BILI when lost", History: 1}},
	} {
		b.cfg.Storage = jetstream.FileStorage
		b.cfg.Replicas = cfg.Replicas
		kv, err := js.CreateOrUpdateKeyValue(ctx, b.cfg)
		if err != nil {
			return nil, fmt.Errorf("provisioning KV bucket %s: %w", b.cfg.Bucket, err)
		}
		*b.dst = kv
	}
	st.Uploads, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketUploads, Description: "images pasted in the browser inbox, until sent",
		TTL: UploadTTL, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("provisioning object store %s: %w", BucketUploads, err)
	}
	return &st, nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err == nil {
		return s, nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if _, gerr := js.Stream(ctx, cfg.Name); gerr == nil {
			return nil, fmt.Errorf("stream %s exists with settings NATS cannot change in place (for example storage type): %w; change the setting back, or delete the stream", cfg.Name, err)
		}
	}
	return nil, fmt.Errorf("provisioning stream %s: %w", cfg.Name, err)
}
