package team

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Role is what a member may do: an admin also manages the team.
type Role string

// Roles.
const (
	RoleAdmin Role = "admin"
	RoleAgent Role = "agent"
)

// Member is one person on the team. Their password and tokens are kept
// beside it, as hashes, and never leave this package.
type Member struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TelegramID and DiscordID are the member's user ids on those
	// platforms (0 and "" when none): replies and team commands typed
	// there are theirs.
	TelegramID int64     `json:"telegram_id,omitempty,string"`
	DiscordID  string    `json:"discord_id,omitempty"`
	Created    time.Time `json:"created"`
}

// Key prefixes in bucket bili_team.
const (
	memberPrefix = "member."
	tokenPrefix  = "token."
)

// TokenPrefix starts every personal API token, so that a token pasted in
// the wrong place is recognisable (and secret scanners can find it).
const TokenPrefix = "bbt_"

// Sizes of a token's parts, in random bytes.
const (
	tokenIDLen     = 8
	tokenSecretLen = 32
)

// memberRecord is the value of member.<name>.
type memberRecord struct {
	Member
	// ID is random and new with every Add, so that the tokens of a
	// removed member never work for a new member of the same name, even
	// when deleting them failed.
	ID           string `json:"id"`
	PasswordHash string `json:"password_hash"`
}

// tokenRecord is the value of token.<id>.
type tokenRecord struct {
	Member   string    `json:"member"`
	MemberID string    `json:"member_id"`
	Hash     string    `json:"hash"`
	Created  time.Time `json:"created"`
}

// Members is the team, kept in a KV bucket (bili_team) so that every
// bridge process sees the same team. It is safe for concurrent use.
//
// Writes are compare-and-set where two processes could collide. On a
// replicated bucket reads are direct gets, which any replica answers: a
// read may trail a write made through another replica by the replication
// lag (milliseconds), a revocation included.
type Members struct {
	kv jetstream.KeyValue
	// verify checks a secret against a stored hash; a field so that tests
	// can count how often the costly check runs.
	verify func(encoded, secret string) (bool, error)
	// hashing bounds the argon2 checks running at once (19 MiB each): a
	// flood of sign-ins or token checks waits its turn rather than taking
	// the process's memory.
	hashing chan struct{}

	mu sync.Mutex
	// verified remembers, per token id, the token that passed argon2 and
	// the revision of the record it passed against: the API checks a token
	// on every request, and argon2 costs tens of milliseconds. Only tokens
	// that verified are kept, so its size is bounded by the valid tokens.
	verified map[string]verifiedToken
}

type verifiedToken struct {
	sum [sha256.Size]byte // of the whole token
	rev uint64
}

// NewMembers returns the team kept in kv (bus.Store.Team).
func NewMembers(kv jetstream.KeyValue) *Members {
	return &Members{kv: kv, verify: verifySecret, verified: make(map[string]verifiedToken),
		hashing: make(chan struct{}, max(2, runtime.NumCPU()))}
}

// slowly runs the argon2 work f when a slot is free, or fails with ctx.
func (ms *Members) slowly(ctx context.Context, f func()) error {
	select {
	case ms.hashing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-ms.hashing }()
	f()
	return nil
}

// Add adds m, who logs in with password. A member of that name exists
// already: ErrMemberExists (KV Create is compare-and-set, so of two
// processes adding the same name one fails). An empty Role is an agent; a
// zero Created is now.
func (ms *Members) Add(ctx context.Context, m Member, password string) error {
	name, err := normalizeName(m.Name)
	if err != nil {
		return err
	}
	m.Name = name
	if m.Role == "" {
		m.Role = RoleAgent
	}
	if err := checkMember(m); err != nil {
		return err
	}
	if err := checkNewPassword(password); err != nil {
		return err
	}
	// Two members with one chat account would make ByTelegram and
	// ByDiscord ambiguous. This check and the Create below are not one
	// atomic step; adding members is rare and done by admins.
	if err := ms.checkChatIDsFree(ctx, m); err != nil {
		return err
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	rec := memberRecord{Member: m, ID: hex.EncodeToString(randomBytes(16)), PasswordHash: hashSecret(password)}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := ms.kv.Create(ctx, memberPrefix+name, data); err != nil {
		if isConflict(err) {
			return fmt.Errorf("member %q: %w", name, ErrMemberExists)
		}
		return fmt.Errorf("adding member %q: %w", name, err)
	}
	return nil
}

// Get returns the member called name, or ErrNoMember.
func (ms *Members) Get(ctx context.Context, name string) (*Member, error) {
	name, err := normalizeName(name)
	if err != nil {
		return nil, err
	}
	rec, _, err := ms.record(ctx, name)
	if err != nil {
		return nil, err
	}
	return &rec.Member, nil
}

// List returns every member, sorted by name.
func (ms *Members) List(ctx context.Context) ([]Member, error) {
	var list []Member
	err := ms.scanMembers(ctx, func(rec memberRecord) bool {
		list = append(list, rec.Member)
		return true
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Remove removes the member called name and revokes their tokens.
func (ms *Members) Remove(ctx context.Context, name string) error {
	name, err := normalizeName(name)
	if err != nil {
		return err
	}
	_, rev, err := ms.record(ctx, name)
	if err != nil {
		return err
	}
	// Only the version just read: a member re-added meanwhile stays.
	if err := ms.kv.Delete(ctx, memberPrefix+name, jetstream.LastRevision(rev)); err != nil {
		if isConflict(err) {
			return fmt.Errorf("member %q changed while being removed: try again", name)
		}
		return fmt.Errorf("removing member %q: %w", name, err)
	}
	if err := ms.deleteTokens(ctx, name); err != nil {
		// The tokens are bound to the removed record's ID: they no longer
		// work, but their records remain.
		return fmt.Errorf("member %q is removed, but deleting their tokens failed: %w", name, err)
	}
	return nil
}

// SetPassword replaces the password of the member called name.
func (ms *Members) SetPassword(ctx context.Context, name, password string) error {
	name, err := normalizeName(name)
	if err != nil {
		return err
	}
	if err := checkNewPassword(password); err != nil {
		return err
	}
	hash := hashSecret(password)
	// Compare-and-set, so that a change of the member made meanwhile by
	// another process (a role, a chat id) is not overwritten.
	for attempt := 1; ; attempt++ {
		rec, rev, err := ms.record(ctx, name)
		if err != nil {
			return err
		}
		rec.PasswordHash = hash
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = ms.kv.Update(ctx, memberPrefix+name, data, rev)
		switch {
		case err == nil:
			return nil
		case !isConflict(err) || attempt == 3:
			return fmt.Errorf("setting the password of %q: %w", name, err)
		}
	}
}

// CheckPassword returns the member called name if password is theirs.
// An unknown member and a wrong password are both ErrBadLogin, and take
// about as long: which of the two it was is not given away.
func (ms *Members) CheckPassword(ctx context.Context, name, password string) (*Member, error) {
	name, err := normalizeName(name)
	if err != nil {
		_ = ms.slowly(ctx, func() { burnHash(password) })
		return nil, ErrBadLogin
	}
	rec, _, err := ms.record(ctx, name)
	if errors.Is(err, ErrNoMember) {
		_ = ms.slowly(ctx, func() { burnHash(password) })
		return nil, ErrBadLogin
	}
	if err != nil {
		return nil, err
	}
	var ok bool
	if werr := ms.slowly(ctx, func() { ok, err = ms.verify(rec.PasswordHash, password) }); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, fmt.Errorf("checking the password of %q: %w", name, err)
	}
	if !ok {
		return nil, ErrBadLogin
	}
	return &rec.Member, nil
}

// NewToken makes a personal API token for the member called name:
// "bbt_<id>_<secret>", id 8 random bytes in hex, secret 32 random bytes
// in base64url. Only its hash is kept: it is shown once, to the caller.
func (ms *Members) NewToken(ctx context.Context, name string) (string, error) {
	name, err := normalizeName(name)
	if err != nil {
		return "", err
	}
	rec, _, err := ms.record(ctx, name)
	if err != nil {
		return "", err
	}
	id := hex.EncodeToString(randomBytes(tokenIDLen))
	token := TokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(randomBytes(tokenSecretLen))
	data, err := json.Marshal(tokenRecord{Member: name, MemberID: rec.ID, Hash: hashSecret(token), Created: time.Now().UTC()})
	if err != nil {
		return "", err
	}
	// Create: an id that exists already (once in 2^64) fails rather than
	// replacing someone's token.
	if _, err := ms.kv.Create(ctx, tokenPrefix+id, data); err != nil {
		return "", fmt.Errorf("saving a token for %q: %w", name, err)
	}
	return token, nil
}

// RevokeTokens revokes every token of the member called name; a process
// checking one of them sees it at its next check.
func (ms *Members) RevokeTokens(ctx context.Context, name string) error {
	name, err := normalizeName(name)
	if err != nil {
		return err
	}
	if _, _, err := ms.record(ctx, name); err != nil {
		return err
	}
	return ms.deleteTokens(ctx, name)
}

// ByToken returns the member whose personal token this is, or
// ErrBadToken for a malformed, unknown or revoked token, and for a token
// of a removed member.
//
// The token's record is read on every call, so a revocation by any
// process counts at once; argon2 runs only for a token this Members has
// not verified against that very revision of its record.
func (ms *Members) ByToken(ctx context.Context, token string) (*Member, error) {
	id, ok := parseToken(token)
	if !ok {
		return nil, ErrBadToken
	}
	e, err := ms.kv.Get(ctx, tokenPrefix+id)
	if isNotFound(err) {
		ms.forget(id)
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("looking up a token: %w", err)
	}
	var tr tokenRecord
	if err := json.Unmarshal(e.Value(), &tr); err != nil {
		return nil, fmt.Errorf("token record %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(token))
	if !ms.wasVerified(id, sum, e.Revision()) {
		var ok bool
		if werr := ms.slowly(ctx, func() { ok, err = ms.verify(tr.Hash, token) }); werr != nil {
			return nil, werr
		}
		if err != nil {
			return nil, fmt.Errorf("token record %s: %w", id, err)
		}
		if !ok {
			return nil, ErrBadToken
		}
		ms.remember(id, sum, e.Revision())
	}
	rec, _, err := ms.record(ctx, tr.Member)
	if errors.Is(err, ErrNoMember) || err == nil && rec.ID != tr.MemberID {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	return &rec.Member, nil
}

// ByTelegram returns the member with that Telegram user id. A failure to
// read the team counts as no member: the caller then refuses.
func (ms *Members) ByTelegram(ctx context.Context, id int64) (*Member, bool) {
	if id == 0 {
		return nil, false
	}
	return ms.find(ctx, func(m *Member) bool { return m.TelegramID == id })
}

// ByDiscord returns the member with that Discord user id, like ByTelegram.
func (ms *Members) ByDiscord(ctx context.Context, id string) (*Member, bool) {
	if id == "" {
		return nil, false
	}
	return ms.find(ctx, func(m *Member) bool { return m.DiscordID == id })
}

// Any reports whether the team has at least one member (until it has,
// the browser inbox shows a status page).
func (ms *Members) Any(ctx context.Context) (bool, error) {
	found := false
	err := ms.scanMembers(ctx, func(memberRecord) bool {
		found = true
		return false
	})
	return found, err
}

func (ms *Members) find(ctx context.Context, match func(*Member) bool) (*Member, bool) {
	var found *Member
	err := ms.scanMembers(ctx, func(rec memberRecord) bool {
		if match(&rec.Member) {
			found = &rec.Member
			return false
		}
		return true
	})
	if err != nil {
		return nil, false
	}
	return found, found != nil
}

// checkChatIDsFree refuses chat ids that are another member's already.
func (ms *Members) checkChatIDsFree(ctx context.Context, m Member) error {
	var taken error
	err := ms.scanMembers(ctx, func(rec memberRecord) bool {
		switch {
		case rec.Name == m.Name:
			// That is ErrMemberExists, which Create reports.
		case m.TelegramID != 0 && rec.TelegramID == m.TelegramID:
			taken = inputErrorf("Telegram user %d is member %s already", m.TelegramID, rec.Name)
		case m.DiscordID != "" && rec.DiscordID == m.DiscordID:
			taken = inputErrorf("Discord user %s is member %s already", m.DiscordID, rec.Name)
		}
		return taken == nil
	})
	if err != nil {
		return err
	}
	return taken
}

// record reads member.<name> (name normalized) and its revision.
func (ms *Members) record(ctx context.Context, name string) (memberRecord, uint64, error) {
	e, err := ms.kv.Get(ctx, memberPrefix+name)
	if isNotFound(err) {
		return memberRecord{}, 0, fmt.Errorf("member %q: %w", name, ErrNoMember)
	}
	if err != nil {
		return memberRecord{}, 0, fmt.Errorf("reading member %q: %w", name, err)
	}
	var rec memberRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return memberRecord{}, 0, fmt.Errorf("member record %q: %w", name, err)
	}
	return rec, e.Revision(), nil
}

// scanMembers calls fn with every member record until fn returns false.
func (ms *Members) scanMembers(ctx context.Context, fn func(memberRecord) bool) error {
	return ms.scan(ctx, memberPrefix, func(e jetstream.KeyValueEntry) (bool, error) {
		var rec memberRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return false, fmt.Errorf("member record %s: %w", e.Key(), err)
		}
		return fn(rec), nil
	})
}

// deleteTokens deletes every token record of the member called name.
func (ms *Members) deleteTokens(ctx context.Context, name string) error {
	var ids []string
	err := ms.scan(ctx, tokenPrefix, func(e jetstream.KeyValueEntry) (bool, error) {
		var tr tokenRecord
		// A damaged record is nobody's token (ByToken refuses it); it is
		// left for whoever looks at the bucket.
		if json.Unmarshal(e.Value(), &tr) == nil && tr.Member == name {
			ids = append(ids, strings.TrimPrefix(e.Key(), tokenPrefix))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := ms.kv.Delete(ctx, tokenPrefix+id); err != nil {
			errs = append(errs, err)
		}
		ms.forget(id)
	}
	return errors.Join(errs...)
}

// scan calls fn with the current value of every key under prefix, in no
// particular order, until fn returns false or an error. A watch reads the
// values in one pass (listing keys and getting each would be n+1 trips).
func (ms *Members) scan(ctx context.Context, prefix string, fn func(jetstream.KeyValueEntry) (bool, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := ms.kv.Watch(ctx, prefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("reading the team: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("reading the team: the watch ended early")
			case e == nil: // all current values seen
				return nil
			}
			more, err := fn(e)
			if err != nil || !more {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("reading the team: %w", ctx.Err())
		}
	}
}

func (ms *Members) wasVerified(id string, sum [sha256.Size]byte, rev uint64) bool {
	ms.mu.Lock()
	v, ok := ms.verified[id]
	ms.mu.Unlock()
	return ok && v.rev == rev && subtle.ConstantTimeCompare(v.sum[:], sum[:]) == 1
}

func (ms *Members) remember(id string, sum [sha256.Size]byte, rev uint64) {
	ms.mu.Lock()
	ms.verified[id] = verifiedToken{sum: sum, rev: rev}
	ms.mu.Unlock()
}

func (ms *Members) forget(id string) {
	ms.mu.Lock()
	delete(ms.verified, id)
	ms.mu.Unlock()
}

// normalizeName lower-cases a member name and checks it: 1 to 32 of a-z,
// 0-9, '-' and '_', which are also safe in KV keys, URLs and chat
// commands (/assign ana).
func normalizeName(name string) (string, error) {
	ok := len(name) >= 1 && len(name) <= 32
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	if !ok {
		return "", inputErrorf("member name %q: use 1 to 32 of a-z, 0-9, '-' and '_'", name)
	}
	return strings.ToLower(name), nil
}

// checkMember checks the role and the chat ids of a member to add.
func checkMember(m Member) error {
	if m.Role != RoleAdmin && m.Role != RoleAgent {
		return inputErrorf("role %q: want %s or %s", m.Role, RoleAdmin, RoleAgent)
	}
	if m.TelegramID < 0 {
		return inputErrorf("Telegram user id %d: a user's id is a positive number", m.TelegramID)
	}
	if d := m.DiscordID; d != "" && (len(d) > 20 || strings.Trim(d, "0123456789") != "") {
		return inputErrorf("Discord user id %q: want the user's numeric id (Developer Mode → Copy User ID)", d)
	}
	return nil
}

// parseToken returns the id of a well-formed token.
func parseToken(token string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return "", false
	}
	// The id is hex, so the first '_' ends it; the secret may hold more.
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*tokenIDLen || strings.Trim(id, "0123456789abcdef") != "" {
		return "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != tokenSecretLen {
		return "", false
	}
	return id, true
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return b
}

func isNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// isConflict reports a failed compare-and-set. Which error says so
// depends on the call and on the stream's replicas: Create of a key that
// exists says ErrKeyExists; Update and Delete with LastRevision say
// ErrKeyRevisionMismatch; Create of a deleted key (a removed member added
// again) passes the server's "wrong last sequence" on, whose code differs
// between one replica (10071) and several (10164).
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
