// Package poller turns a Bilibili account's DMs into events on JetStream.
//
// Bilibili offers web clients no push channel for DMs, so the poller asks
// new_sessions every interval (one call when nothing changed) and, for
// each conversation that moved, fetches the messages after its cursor.
// Cursors live in NATS KV and advance only after JetStream acknowledged
// the publish, so a crash at any point re-publishes at worst (and the
// stream drops the duplicate by its id) and never skips.
package poller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/backoff"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/lease"
)

// API is the part of the Bilibili client the poller uses.
type API interface {
	NewSessions(ctx context.Context, beginTS int64, size int) (*bilibili.SessionPage, error)
	GetSessions(ctx context.Context, p bilibili.GetSessionsParams) (*bilibili.SessionPage, error)
	FetchSessionMsgs(ctx context.Context, p bilibili.FetchParams) (*bilibili.MessagePage, error)
	UserCards(ctx context.Context, uids []int64) ([]bilibili.UserCard, error)
	UpdateAck(ctx context.Context, sessionType int, talkerID, ackSeqno uint64) error
}

// Publisher stores an event on JetStream and returns once it is acknowledged.
type Publisher interface {
	Publish(ctx context.Context, subject string, ev events.Event) error
}

// Start positions for an account polled for the first time.
const (
	StartUnread = "unread" // publish the messages that are unread now
	StartNow    = "now"    // publish nothing that is already there
)

// Config configures a Poller.
type Config struct {
	AccountUID  int64
	AccountName string // names outgoing messages
	API         API
	Publisher   Publisher
	Cursors     jetstream.KeyValue
	// Leases, when set, makes the poller poll only while it holds the
	// account's lease.
	Leases   jetstream.KeyValue
	LeaseTTL time.Duration
	// Holder names this process in the lease (lease.Holder); default a
	// random name.
	Holder   string
	Subjects events.Subjects
	// Interval between polls; default 6s. Jittered by ±10%.
	Interval time.Duration
	// StartFrom is StartUnread (default) or StartNow.
	StartFrom string
	// MarkRead calls update_ack once a conversation's messages are published.
	MarkRead bool
	// MaxBackoff caps the wait after repeated failures; default 10 min.
	MaxBackoff time.Duration
	// LoginRetry is how often an expired login is tried again; default ten
	// intervals, at most a minute.
	LoginRetry time.Duration
	// PageSize is the size of fetch_session_msgs and new_sessions pages; default 100.
	PageSize int
	Logger   *slog.Logger
	Metrics  *Metrics
	Now      func() time.Time
}

// Status is the poller's state, for /readyz and /status.
type Status struct {
	LoginValid   bool
	Leader       bool // holds the lease (always true without leases)
	LastGoodPoll time.Time
	LastError    string
}

// Poller polls one account.
type Poller struct {
	cfg      Config
	log      *slog.Logger
	lease    *lease.Lease
	profiles *profiles
	wake     chan struct{}

	retries convRetries // conversations that failed to sync
	found   pollTally   // what the poll in progress published

	mu       sync.Mutex
	status   Status
	failures int
}

// New returns a Poller for cfg.
func New(cfg Config) *Poller {
	if cfg.Interval <= 0 {
		cfg.Interval = 6 * time.Second
	}
	if cfg.StartFrom == "" {
		cfg.StartFrom = StartUnread
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.LoginRetry <= 0 {
		cfg.LoginRetry = min(10*cfg.Interval, time.Minute)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	log := cfg.Logger // the caller names the account (uid) in it
	p := &Poller{
		cfg:      cfg,
		log:      log,
		profiles: newProfiles(10000, time.Hour, cfg.Now),
		wake:     make(chan struct{}, 1),
		status:   Status{LoginValid: true, Leader: cfg.Leases == nil},
	}
	if cfg.Leases != nil {
		holder := cfg.Holder
		if holder == "" {
			holder = uuid.NewString()
		}
		p.lease = lease.New(cfg.Leases, strconv.FormatInt(cfg.AccountUID, 10), holder, cfg.LeaseTTL, log)
	}
	return p
}

// Leader reports whether this poller holds its account's lease (always
// true without leases).
func (p *Poller) Leader() bool { return p.lease == nil || p.lease.Held() }

// Status returns the current state.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Wake asks for a poll now, for example after new credentials arrived.
func (p *Poller) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run polls until ctx ends. It returns nil on cancellation: every
// failure is retried with backoff, including an expired login, which is
// reported once and then retried slowly until it works again.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	leaseCtx, stopLease := context.WithCancel(ctx)
	defer stopLease()
	if p.lease != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.lease.Keep(leaseCtx, func(held bool) {
				p.mu.Lock()
				p.status.Leader = held
				p.mu.Unlock()
				if held {
					p.Wake()
				}
			})
		}()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.wake:
		}
		var delay time.Duration
		if p.lease != nil && !p.lease.Held() {
			delay = p.cfg.LeaseTTL / 3
		} else {
			delay = p.after(ctx, p.PollOnce(ctx))
		}
		if ctx.Err() != nil {
			return nil
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(delay)
	}
}

// after records the outcome of a poll and returns the wait before the next.
func (p *Poller) after(ctx context.Context, err error) time.Duration {
	p.mu.Lock()
	wasValid := p.status.LoginValid
	p.mu.Unlock()
	switch {
	case err == nil:
		p.mu.Lock()
		p.failures = 0
		p.status.LoginValid = true
		p.status.LastGoodPoll = p.cfg.Now()
		p.status.LastError = ""
		p.mu.Unlock()
		p.cfg.Metrics.polled(p.cfg.AccountUID, "ok", p.cfg.Now())
		if !wasValid {
			p.log.Info("Bilibili login works again; polling resumed")
			p.publishStatus(ctx, events.StateLoggedIn, "The Bilibili login works again; messages are flowing.")
		}
		return backoff.Jitter(p.cfg.Interval, pollJitter)
	case ctx.Err() != nil:
		return 0
	case bilibili.IsLoginExpired(err):
		p.setError(err, false)
		p.cfg.Metrics.polled(p.cfg.AccountUID, "login_expired", time.Time{})
		if wasValid {
			p.log.Error("Bilibili login expired: run `bilibridge login` (or set new BILI_SESSDATA and BILI_JCT); polling is paused and resumes by itself once the login works", "err", err)
			p.publishStatus(ctx, events.StateLoginExpired, "The Bilibili login has expired. Run `bilibridge login` on the bridge's host; polling resumes by itself once the new login is in place.")
		}
		return p.cfg.LoginRetry
	}
	p.setError(err, true)
	p.mu.Lock()
	p.failures++
	n := p.failures
	p.mu.Unlock()
	class := bilibili.Classify(err)
	p.cfg.Metrics.polled(p.cfg.AccountUID, class.String(), time.Time{})
	wait := p.backoff(n)
	p.log.Warn("poll failed; backing off", "class", class.String(), "failures", n, "retry_in", wait.Round(time.Millisecond), "err", err)
	if class == bilibili.ClassRiskControl && n == 1 {
		p.publishStatus(ctx, events.StateRiskControl, "Bilibili's risk control refused a request; the bridge is polling less often until it passes.")
	}
	return wait
}

func (p *Poller) setError(err error, loginValid bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.LastError = err.Error()
	if !loginValid {
		p.status.LoginValid = false
	}
}

// backoff doubles the interval per consecutive failure, up to MaxBackoff,
// and jitters it.
func (p *Poller) backoff(failures int) time.Duration {
	return backoff.Jitter(backoff.Exp(p.cfg.Interval, failures+1, p.cfg.MaxBackoff), pollJitter)
}

// pollJitter spreads polls by ±10% so that they never look machine-timed.
const pollJitter = 0.1

func (p *Poller) publishStatus(ctx context.Context, state, msg string) {
	uid := p.cfg.AccountUID
	ev, err := events.NewAccountStatus(uid, state, msg, p.cfg.Now())
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = p.cfg.Publisher.Publish(ctx, p.cfg.Subjects.Account(uid), ev)
	}
	if err != nil {
		p.log.Warn("publishing account status", "state", state, "err", err)
	}
}

// Cursor keys in the KV bucket.
func (p *Poller) tsKey() string { return strconv.FormatInt(p.cfg.AccountUID, 10) + ".ts" }
func (p *Poller) convKey(sessionType int, talker uint64) string {
	return fmt.Sprintf("%d.%d.%d", p.cfg.AccountUID, sessionType, talker)
}

// cursor is a position read from KV with the revision it had: writes
// are compare-and-set on that revision, so a poller that lost its lease
// (and so may hold stale positions) fails instead of rewinding what the
// new holder wrote.
type cursor struct {
	key   string
	val   uint64
	rev   uint64 // 0: the key did not exist
	found bool
}

func (p *Poller) getCursor(ctx context.Context, key string) (*cursor, error) {
	e, err := p.cfg.Cursors.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &cursor{key: key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading cursor %s: %w", key, err)
	}
	v, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("cursor %s holds %q: %w", key, e.Value(), err)
	}
	return &cursor{key: key, val: v, rev: e.Revision(), found: true}, nil
}

// errLeaseLost stops a poll that outlived its lease: the new holder's
// cursors must not be overwritten with older ones.
var errLeaseLost = errors.New("poller lease lost during the poll")

// putCursor moves c to v if nobody wrote it since it was read.
func (p *Poller) putCursor(ctx context.Context, c *cursor, v uint64) error {
	if p.lease != nil && !p.lease.Held() {
		return errLeaseLost
	}
	b := []byte(strconv.FormatUint(v, 10))
	var rev uint64
	var err error
	if c.rev == 0 {
		rev, err = p.cfg.Cursors.Create(ctx, c.key, b)
	} else {
		rev, err = p.cfg.Cursors.Update(ctx, c.key, b, c.rev)
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return fmt.Errorf("saving cursor %s: another poller wrote it meanwhile: %w", c.key, errLeaseLost)
		}
		return fmt.Errorf("saving cursor %s: %w", c.key, err)
	}
	c.val, c.rev, c.found = v, rev, true
	return nil
}

// PollOnce runs one poll: one new_sessions call when nothing changed.
//
// A conversation that fails to sync is retried on its own backoff, and
// the session cursor stays below it, so new_sessions keeps reporting it
// until it is synced; the others go on. Only when nothing could be synced
// does the poll fail (and the whole poller back off).
func (p *Poller) PollOnce(ctx context.Context) error {
	p.found = pollTally{}
	defer p.sayFound()
	ts, err := p.getCursor(ctx, p.tsKey())
	if err != nil {
		return err
	}
	if !ts.found {
		return p.bootstrap(ctx)
	}
	sessions, err := p.changedSessions(ctx, int64(ts.val))
	if err != nil {
		return err
	}
	p.lookupTalkers(ctx, sessions)
	newTS := int64(ts.val)
	held := int64(math.MaxInt64) // the oldest session_ts still to be synced
	var failed error
	synced := 0
	for i := range sessions {
		s := &sessions[i]
		key := p.convKey(s.SessionType, s.TalkerID)
		if !p.retries.due(key, p.cfg.Now()) {
			held = min(held, s.SessionTS)
			continue
		}
		err := p.syncSession(ctx, s, int64(ts.val))
		switch {
		case err == nil:
			p.retries.succeeded(key)
			synced++
			newTS = max(newTS, s.SessionTS)
			continue
		case ctx.Err() != nil, errors.Is(err, errLeaseLost):
			return err
		}
		switch c := bilibili.Classify(err); {
		case c == bilibili.ClassLoginExpired || c == bilibili.ClassRiskControl:
			return err
		case unreadable(err):
			if err := p.skip(ctx, s, err); err != nil {
				return err
			}
			p.retries.succeeded(key)
			newTS = max(newTS, s.SessionTS)
		default:
			wait := p.retries.failed(key, p.cfg.Now(), p.cfg.Interval, p.cfg.MaxBackoff)
			p.log.Warn("conversation not synced; retrying it", "session_type", s.SessionType, "talker_id", s.TalkerID,
				"class", c.String(), "retry_in", wait.Round(time.Millisecond), "err", err)
			held = min(held, s.SessionTS)
			failed = errors.Join(failed, err)
		}
	}
	if failed != nil && synced == 0 {
		return failed
	}
	if held != math.MaxInt64 {
		newTS = min(newTS, held-1)
	}
	if newTS > int64(ts.val) {
		return p.putCursor(ctx, ts, uint64(newTS))
	}
	return nil
}

// pollTally counts what one poll published, for its log line.
type pollTally struct {
	messages, recalls int
	convs             map[[2]uint64]bool
}

func (t *pollTally) add(typ string, sessionType int, talker uint64) {
	if typ == events.TypeRecall {
		t.recalls++
	} else {
		t.messages++
	}
	if t.convs == nil {
		t.convs = map[[2]uint64]bool{}
	}
	t.convs[[2]uint64{uint64(sessionType), talker}] = true
}

// sayFound logs one line for a poll that found something (nothing for
// the many that find nothing).
func (p *Poller) sayFound() {
	if f := p.found; f.messages+f.recalls > 0 {
		p.log.Info("new messages", "messages", f.messages, "conversations", len(f.convs), "recalls", f.recalls)
	}
}

// unreadableCodes are the answers of fetch_session_msgs that no retry
// changes (bilibili-api.md §2.14): the fan group was dissolved (700013),
// the account is no longer in it (700014). Every other failure, codes
// never seen before included, is retried: skipping on a guess would lose
// messages for good.
var unreadableCodes = []int{bilibili.CodeGroupDissolved, bilibili.CodeNotInGroup}

// unreadable reports whether err is one of unreadableCodes.
func unreadable(err error) bool {
	return slices.Contains(unreadableCodes, bilibili.Code(err))
}

// skip moves a conversation Bilibili refuses for good past its end, and
// says so: an account.status event naming it and how many unread
// messages are lost, a log line and a metric. Nothing is skipped
// silently; if the event cannot be published the cursor stays.
func (p *Poller) skip(ctx context.Context, s *bilibili.Session, cause error) error {
	conv := p.conversation(ctx, s, nil)
	name := conv.Name
	if name == "" {
		name = conv.Subject()
	}
	msg := fmt.Sprintf("Conversation %s (%s) cannot be read any more: %s Its %d unread messages were not forwarded.",
		name, conv.Subject(), bilibili.Reason(cause), s.UnreadCount)
	ev, err := events.New(p.cfg.AccountUID, events.TypeAccountStatus,
		fmt.Sprintf("%d-skipped-%d-%d-%d", p.cfg.AccountUID, s.SessionType, s.TalkerID, s.MaxSeqno),
		"", p.cfg.Now(), events.AccountStatusData{
			AccountUID: p.cfg.AccountUID, State: events.StateConversationSkipped, Message: msg,
			Conversation: &conv, ErrorCode: bilibili.Code(cause), UnreadSkipped: s.UnreadCount,
		})
	if err == nil {
		err = p.cfg.Publisher.Publish(ctx, p.cfg.Subjects.Account(p.cfg.AccountUID), ev)
	}
	if err != nil {
		return fmt.Errorf("reporting the skip of conversation %s: %w", conv.Subject(), err)
	}
	p.log.Error("conversation cannot be read; skipping its messages up to now", "session_type", s.SessionType,
		"talker_id", s.TalkerID, "unread_skipped", s.UnreadCount, "err", cause)
	p.cfg.Metrics.skipped(bilibili.Code(cause), s.UnreadCount)
	c, err := p.getCursor(ctx, p.convKey(s.SessionType, s.TalkerID))
	if err != nil {
		return err
	}
	if c.found && c.val >= s.MaxSeqno {
		return nil
	}
	return p.putCursor(ctx, c, s.MaxSeqno)
}

// changedSessions lists sessions active after ts, oldest first. When
// new_sessions says there is more than one page, the rest is paged
// through get_sessions backwards by session_ts.
func (p *Poller) changedSessions(ctx context.Context, ts int64) ([]bilibili.Session, error) {
	page, err := p.cfg.API.NewSessions(ctx, ts, p.cfg.PageSize)
	if err != nil {
		return nil, err
	}
	all := page.Sessions
	more := page.HasMore
	for more && len(all) > 0 {
		oldest := all[len(all)-1].SessionTS
		for _, s := range all {
			oldest = min(oldest, s.SessionTS)
		}
		page, err := p.cfg.API.GetSessions(ctx, bilibili.GetSessionsParams{SessionType: 4, EndTS: oldest, Size: p.cfg.PageSize})
		if err != nil {
			return nil, err
		}
		more = page.HasMore
		added := false
		for _, s := range page.Sessions {
			if s.SessionTS <= ts {
				more = false
				continue
			}
			if s.SessionTS < oldest {
				all = append(all, s)
				added = true
			}
		}
		if !added {
			break
		}
	}
	slices.SortStableFunc(all, func(a, b bilibili.Session) int { return cmp.Compare(a.SessionTS, b.SessionTS) })
	return all, nil
}

// syncSession publishes what is new in one conversation.
func (p *Poller) syncSession(ctx context.Context, s *bilibili.Session, prevTS int64) error {
	c, err := p.getCursor(ctx, p.convKey(s.SessionType, s.TalkerID))
	if err != nil {
		return err
	}
	if !c.found {
		return p.syncUntracked(ctx, s, prevTS, c)
	}
	if s.MaxSeqno <= c.val {
		return nil
	}
	return p.catchUp(ctx, s, c)
}

// catchUp publishes every message after c, oldest first.
func (p *Poller) catchUp(ctx context.Context, s *bilibili.Session, c *cursor) error {
	for {
		msgs, err := p.fetchAfter(ctx, s, c.val)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			// Nothing visible up to max_seqno (removed by the system, say):
			// move past it so it is not fetched again every poll.
			if s.MaxSeqno > c.val {
				return p.putCursor(ctx, c, s.MaxSeqno)
			}
			return nil
		}
		if err := p.publish(ctx, s, msgs, c); err != nil {
			return err
		}
		if c.val >= s.MaxSeqno {
			return nil
		}
	}
}

// fetchAfter returns the oldest messages after begin, oldest first: at
// most a window of pages, contiguous from begin, so that no message is
// skipped however long the backlog. Which end of the range a truncated
// page keeps is undocumented, so the loop is right either way: it pages
// backwards with end_seqno while has_more, keeping only the last (oldest)
// pages it saw, and catchUp repeats from the new cursor.
func (p *Poller) fetchAfter(ctx context.Context, s *bilibili.Session, begin uint64) ([]bilibili.Message, error) {
	var window [][]bilibili.Message
	var end uint64
	for pages := 0; ; pages++ {
		if pages == maxPagesPerRound {
			return nil, fmt.Errorf("conversation %d/%d: more than %d pages of new messages", s.SessionType, s.TalkerID, maxPagesPerRound)
		}
		page, err := p.cfg.API.FetchSessionMsgs(ctx, bilibili.FetchParams{
			SessionType: s.SessionType, TalkerID: s.TalkerID, BeginSeqno: begin, EndSeqno: end, Size: p.cfg.PageSize,
		})
		if err != nil {
			return nil, err
		}
		if len(page.Messages) > 0 {
			window = append(window, page.Messages)
			if len(window) > windowPages {
				window = window[1:] // newer pages come back in a later round
			}
		}
		if !page.HasMore || len(page.Messages) == 0 || page.MinSeqno <= begin+1 {
			break
		}
		end = page.MinSeqno
	}
	var all []bilibili.Message
	for _, w := range window {
		all = append(all, w...)
	}
	return ascending(all, begin), nil
}

// windowPages bounds the messages one catch-up round holds (100 pages of
// 100); maxPagesPerRound stops a server that never ends its has_more.
const (
	windowPages      = 100
	maxPagesPerRound = 100_000
)

// ascending sorts by seqno, drops duplicates and anything at or before
// after.
func ascending(msgs []bilibili.Message, after uint64) []bilibili.Message {
	slices.SortFunc(msgs, func(a, b bilibili.Message) int { return cmp.Compare(a.MsgSeqno, b.MsgSeqno) })
	out := msgs[:0]
	for _, m := range msgs {
		if m.MsgSeqno <= after || (len(out) > 0 && out[len(out)-1].MsgSeqno == m.MsgSeqno) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// syncUntracked handles a conversation the poller has no cursor for: one
// that started after the bridge did. Only what arrived since the last
// poll is new; its history is never replayed.
func (p *Poller) syncUntracked(ctx context.Context, s *bilibili.Session, prevTS int64, c *cursor) error {
	since := prevTS / 1_000_000 // session_ts is µs, message timestamps are seconds
	var fresh []bilibili.Message
	var end uint64
	for range windowPages {
		page, err := p.cfg.API.FetchSessionMsgs(ctx, bilibili.FetchParams{
			SessionType: s.SessionType, TalkerID: s.TalkerID, EndSeqno: end, Size: 20,
		})
		if err != nil {
			return err
		}
		older := false
		for _, m := range page.Messages {
			if m.Timestamp >= since {
				fresh = append(fresh, m)
			} else {
				older = true
			}
		}
		if older || !page.HasMore || len(page.Messages) == 0 {
			break
		}
		end = page.MinSeqno
	}
	fresh = ascending(fresh, 0)
	if len(fresh) > 0 {
		if err := p.publish(ctx, s, fresh, c); err != nil {
			return err
		}
	}
	upTo := s.MaxSeqno
	if len(fresh) > 0 {
		upTo = max(upTo, fresh[len(fresh)-1].MsgSeqno)
	}
	if c.found && c.val >= upTo {
		return nil
	}
	return p.putCursor(ctx, c, upTo)
}

// bootstrap runs on the very first poll of an account: every existing
// conversation gets a cursor at its current end (START_FROM=now), or
// just before its unread messages (START_FROM=unread), which are
// published. The session cursor is written last, so a crash here
// bootstraps again and skips conversations already done.
func (p *Poller) bootstrap(ctx context.Context) error {
	var all []bilibili.Session
	var end int64
	for {
		page, err := p.cfg.API.GetSessions(ctx, bilibili.GetSessionsParams{SessionType: 4, EndTS: end, Size: p.cfg.PageSize})
		if err != nil {
			return err
		}
		all = append(all, page.Sessions...)
		if !page.HasMore || len(page.Sessions) == 0 {
			break
		}
		oldest := page.Sessions[len(page.Sessions)-1].SessionTS
		if end != 0 && oldest >= end {
			break // no progress: the server ignored end_ts
		}
		end = oldest
	}
	p.lookupTalkers(ctx, all)
	var maxTS int64
	published := 0
	for i := range all {
		s := &all[i]
		maxTS = max(maxTS, s.SessionTS)
		c, err := p.getCursor(ctx, p.convKey(s.SessionType, s.TalkerID))
		if err != nil {
			return err
		}
		if c.found {
			// Done by an earlier, interrupted first start: catch up with
			// what arrived since, which new_sessions will not report.
			if s.MaxSeqno > c.val {
				if err := p.catchUp(ctx, s, c); err != nil {
					if !unreadable(err) {
						return err
					}
					if err := p.skip(ctx, s, err); err != nil {
						return err
					}
				}
			}
			continue
		}
		if p.cfg.StartFrom == StartUnread && s.UnreadCount > 0 {
			n, err := p.publishUnread(ctx, s)
			if err != nil {
				if !unreadable(err) {
					return err
				}
				if err := p.skip(ctx, s, err); err != nil {
					return err
				}
				continue
			}
			published += n
		}
		if err := p.putCursor(ctx, c, s.MaxSeqno); err != nil {
			return err
		}
	}
	if maxTS == 0 {
		// No conversations at all: start from now, so the first one that
		// appears is treated as new.
		maxTS = p.cfg.Now().Add(-time.Minute).UnixMicro()
	}
	p.log.Info("first start: conversations tracked", "conversations", len(all), "start_from", p.cfg.StartFrom, "published_unread", published)
	ts, err := p.getCursor(ctx, p.tsKey())
	if err != nil {
		return err
	}
	return p.putCursor(ctx, ts, uint64(maxTS))
}

// publishUnread publishes a conversation's unread messages: those after
// ack_seqno, at most the newest 100.
func (p *Poller) publishUnread(ctx context.Context, s *bilibili.Session) (int, error) {
	size := min(s.UnreadCount, 100)
	// Up to the end the session list gave: a message that arrived since
	// would otherwise push the oldest unread one out of the page (it is
	// the next poll's, past the cursor).
	var end uint64
	if s.MaxSeqno > 0 && s.MaxSeqno < math.MaxUint64 {
		end = s.MaxSeqno + 1
	}
	page, err := p.cfg.API.FetchSessionMsgs(ctx, bilibili.FetchParams{
		SessionType: s.SessionType, TalkerID: s.TalkerID, BeginSeqno: s.AckSeqno, EndSeqno: end, Size: size,
	})
	if err != nil {
		return 0, err
	}
	msgs := ascending(page.Messages, s.AckSeqno)
	if len(msgs) == 0 {
		return 0, nil
	}
	return len(msgs), p.publish(ctx, s, msgs, nil)
}

// publish publishes msgs (oldest first) of one conversation and, when c
// is set, advances that cursor. Names are looked up once for the batch.
func (p *Poller) publish(ctx context.Context, s *bilibili.Session, msgs []bilibili.Message, c *cursor) error {
	conv := p.conversation(ctx, s, msgs)
	const saveEvery = 50
	var last uint64
	var lastIn *bilibili.Message
	for i := range msgs {
		m := &msgs[i]
		if m.MsgStatus == bilibili.StatusRemoved {
			last = m.MsgSeqno // seen: the cursor may move past it
			continue
		}
		if p.lease != nil && !p.lease.Held() {
			// Paused past the lease: what this poll fetched is the new
			// holder's to publish.
			return errLeaseLost
		}
		src := Source{AccountUID: p.cfg.AccountUID, Conversation: conv, SenderName: p.senderName(conv, m)}
		ev, err := MessageEvent(src, m)
		if ev.ID == "" {
			return err
		}
		if err != nil {
			p.log.Warn("message content not understood; forwarded as unknown", "msg_key", m.MsgKey, "msg_type", m.MsgType, "err", err)
		}
		subject := p.cfg.Subjects.Message(p.cfg.AccountUID, s.SessionType, s.TalkerID)
		if ev.Type == events.TypeRecall {
			subject = p.cfg.Subjects.Recall(p.cfg.AccountUID, s.SessionType, s.TalkerID)
		}
		if err := p.cfg.Publisher.Publish(ctx, subject, ev); err != nil {
			return err
		}
		p.cfg.Metrics.published(ev.Type, m.Time(), p.cfg.Now())
		p.found.add(ev.Type, s.SessionType, s.TalkerID)
		last = m.MsgSeqno
		if m.SenderUID != p.cfg.AccountUID {
			lastIn = m
		}
		if c != nil && (i+1)%saveEvery == 0 {
			if err := p.putCursor(ctx, c, last); err != nil {
				return err
			}
		}
	}
	if c != nil && last > c.val {
		if err := p.putCursor(ctx, c, last); err != nil {
			return err
		}
	}
	if p.cfg.MarkRead && lastIn != nil {
		if err := p.cfg.API.UpdateAck(ctx, s.SessionType, s.TalkerID, lastIn.MsgSeqno); err != nil {
			p.log.Warn("marking conversation read", "talker_id", s.TalkerID, "err", err)
		}
	}
	return nil
}

// conversation describes s, looking up the names the batch needs.
func (p *Poller) conversation(ctx context.Context, s *bilibili.Session, msgs []bilibili.Message) events.Conversation {
	c := events.Conversation{SessionType: s.SessionType, TalkerID: s.TalkerID}
	switch {
	case s.IsSystem():
		c.Kind = events.ConversationSystem
		if s.AccountInfo != nil {
			c.Name, c.Avatar = s.AccountInfo.Name, s.AccountInfo.PicURL
		}
		return c
	case s.SessionType == bilibili.SessionGroup:
		c.Kind = events.ConversationGroup
		c.Name, c.Avatar = s.GroupName, s.GroupCover
		uids := make([]int64, 0, len(msgs))
		for _, m := range msgs {
			if m.SenderUID != p.cfg.AccountUID {
				uids = append(uids, m.SenderUID)
			}
		}
		p.lookup(ctx, uids)
		return c
	}
	c.Kind = events.ConversationUser
	p.lookup(ctx, []int64{int64(s.TalkerID)})
	c.Name, c.Avatar, _ = p.profiles.get(int64(s.TalkerID))
	return c
}

// lookupTalkers names every user talker of sessions in as few calls as
// the endpoint allows (50 uids each), instead of one call per talker.
func (p *Poller) lookupTalkers(ctx context.Context, sessions []bilibili.Session) {
	var uids []int64
	for i := range sessions {
		if s := &sessions[i]; s.SessionType == bilibili.SessionUser && !s.IsSystem() {
			uids = append(uids, int64(s.TalkerID))
		}
	}
	p.lookup(ctx, uids)
}

func (p *Poller) lookup(ctx context.Context, uids []int64) {
	if err := p.profiles.fill(ctx, p.cfg.API, uids); err != nil {
		p.log.Debug("looking up user names", "err", err)
	}
}

func (p *Poller) senderName(c events.Conversation, m *bilibili.Message) string {
	switch {
	case m.SenderUID == p.cfg.AccountUID:
		return p.cfg.AccountName
	case m.SenderUID == 0 || c.Kind != events.ConversationGroup:
		return c.Name
	}
	name, _, _ := p.profiles.get(m.SenderUID)
	return name
}

// convRetries keeps the conversations that failed to sync and when each
// may be tried again: a conversation with a passing problem waits on its
// own backoff instead of making the whole poller back off.
type convRetries struct {
	m map[string]convRetry
}

type convRetry struct {
	failures int
	next     time.Time
}

func (r *convRetries) due(key string, now time.Time) bool {
	f, ok := r.m[key]
	return !ok || !now.Before(f.next)
}

// failed records a failure and returns the wait before the next try:
// the interval doubled per failure, up to max.
func (r *convRetries) failed(key string, now time.Time, interval, maxWait time.Duration) time.Duration {
	if r.m == nil {
		r.m = map[string]convRetry{}
	}
	f := r.m[key]
	f.failures++
	wait := backoff.Exp(interval, f.failures, maxWait)
	f.next = now.Add(wait)
	r.m[key] = f
	return wait
}

func (r *convRetries) succeeded(key string) { delete(r.m, key) }
