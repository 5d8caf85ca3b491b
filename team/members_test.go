package team

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/bus/bustest"
)

// teamBucket returns bucket bili_team of a fresh NATS server.
func teamBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	s := bustest.StartServer(t)
	return bustest.Provision(t, s.Connect(t), time.Minute).Team
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// addMember adds a member or fails the test.
func addMember(t *testing.T, ms *Members, m Member, password string) {
	t.Helper()
	if err := ms.Add(testCtx(t), m, password); err != nil {
		t.Fatalf("Add(%s): %v", m.Name, err)
	}
}

// countVerifies makes ms count its argon2 checks.
func countVerifies(ms *Members) *atomic.Int64 {
	var n atomic.Int64
	orig := ms.verify
	ms.verify = func(encoded, secret string) (bool, error) {
		n.Add(1)
		return orig(encoded, secret)
	}
	return &n
}

func TestMembersAddGetListRemove(t *testing.T) {
	ctx := testCtx(t)
	kv := teamBucket(t)
	ms := NewMembers(kv)

	if any, err := ms.Any(ctx); err != nil || any {
		t.Fatalf("Any of an empty team = %v, %v", any, err)
	}
	before := time.Now().UTC()
	addMember(t, ms, Member{Name: "Zoe", Role: RoleAdmin, TelegramID: 1001}, "zoe-password")
	addMember(t, ms, Member{Name: "ana", DiscordID: "80351110224678912"}, "ana-password")
	addMember(t, ms, Member{Name: "bob_2", Role: RoleAgent}, "bob-password")
	if any, err := ms.Any(ctx); err != nil || !any {
		t.Fatalf("Any = %v, %v", any, err)
	}

	got, err := ms.Get(ctx, "ZOE")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "zoe" || got.Role != RoleAdmin || got.TelegramID != 1001 || got.DiscordID != "" {
		t.Errorf("Get(ZOE) = %+v", got)
	}
	if got.Created.Before(before.Add(-time.Second)) || got.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("Created %v is not the time of Add", got.Created)
	}
	ana, err := ms.Get(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if ana.Role != RoleAgent {
		t.Errorf("a member added without a role is %q, want agent", ana.Role)
	}

	list, err := ms.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list {
		names = append(names, m.Name)
	}
	if want := []string{"ana", "bob_2", "zoe"}; !slices.Equal(names, want) {
		t.Errorf("List names = %v, want %v", names, want)
	}

	if err := ms.Remove(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Get(ctx, "ana"); !errors.Is(err, ErrNoMember) {
		t.Errorf("Get after Remove: %v, want ErrNoMember", err)
	}
	if err := ms.Remove(ctx, "ana"); !errors.Is(err, ErrNoMember) {
		t.Errorf("second Remove: %v, want ErrNoMember", err)
	}
	list, _ = ms.List(ctx)
	if len(list) != 2 {
		t.Errorf("List after Remove = %v", list)
	}
	// The name is free again.
	addMember(t, ms, Member{Name: "ana"}, "another-password")
}

func TestMembersUnknown(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	for name, err := range map[string]error{
		"Get":          func() error { _, err := ms.Get(ctx, "nobody"); return err }(),
		"Remove":       ms.Remove(ctx, "nobody"),
		"SetPassword":  ms.SetPassword(ctx, "nobody", "some-password"),
		"NewToken":     func() error { _, err := ms.NewToken(ctx, "nobody"); return err }(),
		"RevokeTokens": ms.RevokeTokens(ctx, "nobody"),
	} {
		if !errors.Is(err, ErrNoMember) {
			t.Errorf("%s of an unknown member: %v, want ErrNoMember", name, err)
		}
	}
}

func TestMembersAddDuplicate(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana"}, "first-password")
	err := ms.Add(ctx, Member{Name: "ANA", Role: RoleAdmin}, "second-password")
	if !errors.Is(err, ErrMemberExists) {
		t.Fatalf("second Add: %v, want ErrMemberExists", err)
	}
	// The first one stands.
	if m, err := ms.CheckPassword(ctx, "ana", "first-password"); err != nil || m.Role != RoleAgent {
		t.Errorf("after a refused Add: %+v, %v", m, err)
	}
}

// Two processes adding one name at the same moment: exactly one wins.
func TestMembersAddRace(t *testing.T) {
	testAddRace(t, teamBucket(t), 3)
}

// On a replicated bucket the server answers two compare-and-sets of one
// key in flight at once with another error code (10164, not 10071); a
// removed name (a delete marker, which Create handles differently) gets it
// passed on as it is. It takes a few rounds to have them in flight at once.
func TestMembersAddRaceReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	cluster := bustest.StartCluster(t, 3)
	ctx := testCtx(t)
	c, err := bus.Connect(ctx, bus.NATSConfig{URL: cluster.URL(), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := bus.Provision(ctx, c.JS, bus.StoreConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	// KV reads are direct gets, which a lagging replica may answer too:
	// a read right after a write can miss it. This test is about
	// compare-and-set, so its reads go to the stream leader.
	stream, err := c.JS.Stream(ctx, "KV_"+bus.BucketTeam)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := c.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := c.JS.KeyValue(ctx, bus.BucketTeam)
	if err != nil {
		t.Fatal(err)
	}
	testAddRace(t, kv, 15)
}

// testAddRace races two Members adding one name, rounds times for a new
// name and for a removed one.
func testAddRace(t *testing.T, kv jetstream.KeyValue, rounds int) {
	t.Helper()
	ctx := testCtx(t)
	a, b := NewMembers(kv), NewMembers(kv)
	races := 0
	race := func(name string) {
		t.Helper()
		races++
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, ms := range []*Members{a, b} {
			wg.Go(func() {
				// Distinct chat ids, so that only the name collides; the
				// id says whose Add it was.
				errs[i] = ms.Add(ctx, Member{Name: name, TelegramID: int64(100*races + i)}, fmt.Sprintf("password-%d", i))
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrMemberExists):
				t.Errorf("%s: loser's error %v, want ErrMemberExists", name, err)
			}
		}
		if won != 1 {
			t.Fatalf("%s: %d of 2 racing Adds succeeded (%v)", name, won, errs)
		}
		// The stored member is the winner's, whole.
		m, err := a.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		i := m.TelegramID % 100
		if errs[i] != nil {
			t.Errorf("%s: stored member %+v is the loser's", name, m)
		}
		if _, err := a.CheckPassword(ctx, name, fmt.Sprintf("password-%d", i)); err != nil {
			t.Errorf("%s: winner's password: %v", name, err)
		}
	}
	addMember(t, a, Member{Name: "old"}, "old-password")
	for round := range rounds {
		race(fmt.Sprintf("new%d", round))
		if err := a.Remove(ctx, "old"); err != nil {
			t.Fatal(err)
		}
		race("old")
	}
}

func TestMembersBadInput(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana", TelegramID: 7, DiscordID: "8"}, "ana-password")
	tests := []struct {
		name     string
		m        Member
		password string
		want     string // in the error
	}{
		{"empty name", Member{Name: ""}, "password", "a-z, 0-9"},
		{"space", Member{Name: "ana maria"}, "password", "a-z, 0-9"},
		{"dot", Member{Name: "ana.maria"}, "password", "a-z, 0-9"},
		{"wildcard", Member{Name: "ana>"}, "password", "a-z, 0-9"},
		{"too long", Member{Name: strings.Repeat("a", 33)}, "password", "1 to 32"},
		{"non-ASCII", Member{Name: "anä"}, "password", "a-z, 0-9"},
		{"Kelvin sign lower-cases to k", Member{Name: "\u212Aai"}, "password", "a-z, 0-9"},
		{"role", Member{Name: "bob", Role: "owner"}, "password", "admin or agent"},
		{"negative Telegram id", Member{Name: "bob", TelegramID: -5}, "password", "positive"},
		{"Discord name", Member{Name: "bob", DiscordID: "bob#1234"}, "password", "numeric"},
		{"short password", Member{Name: "bob"}, "1234567", "at least 8"},
		{"long password", Member{Name: "bob"}, strings.Repeat("x", 1025), "at most"},
		{"Telegram id taken", Member{Name: "bob", TelegramID: 7}, "password", "member ana"},
		{"Discord id taken", Member{Name: "bob", DiscordID: "8"}, "password", "member ana"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ms.Add(ctx, tt.m, tt.password)
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Add: %v, want an *InputError saying %q", err, tt.want)
			}
		})
	}
	if list, _ := ms.List(ctx); len(list) != 1 {
		t.Errorf("refused Adds stored members: %v", list)
	}
	// The name check guards the other methods too, before NATS sees a
	// key like "member.a>".
	for _, name := range []string{"a>", "a.b", "*"} {
		var ie *InputError
		if _, err := ms.Get(ctx, name); !errors.As(err, &ie) {
			t.Errorf("Get(%q): %v, want an *InputError", name, err)
		}
		if err := ms.Remove(ctx, name); !errors.As(err, &ie) {
			t.Errorf("Remove(%q): %v, want an *InputError", name, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana", Role: RoleAdmin}, "right password")
	tests := []struct {
		name, member, password string
		ok                     bool
	}{
		{"right", "ana", "right password", true},
		{"right, name in capitals", "ANA", "right password", true},
		{"wrong", "ana", "wrong password", false},
		{"prefix of the right one", "ana", "right", false},
		{"empty", "ana", "", false},
		{"unknown member", "bob", "right password", false},
		{"malformed name", "a>b", "right password", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ms.CheckPassword(ctx, tt.member, tt.password)
			if tt.ok {
				if err != nil || m.Name != "ana" || m.Role != RoleAdmin {
					t.Fatalf("CheckPassword = %+v, %v", m, err)
				}
				return
			}
			if !errors.Is(err, ErrBadLogin) || m != nil {
				t.Fatalf("CheckPassword = %+v, %v; want ErrBadLogin", m, err)
			}
		})
	}
}

// An unknown name must not answer measurably faster than a wrong
// password: it hashes too. Without that it would answer after one KV
// read, well under a tenth of an argon2 run.
func TestCheckPasswordUnknownMemberTakesAsLong(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana"}, "right password")
	median := func(name string) time.Duration {
		var d []time.Duration
		for range 5 {
			start := time.Now()
			if _, err := ms.CheckPassword(ctx, name, "wrong password"); !errors.Is(err, ErrBadLogin) {
				t.Fatal(err)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	wrong, unknown := median("ana"), median("bob")
	if unknown < wrong/3 {
		t.Errorf("unknown member answered in %v, a wrong password in %v", unknown, wrong)
	}
}

// The bucket holds no password or token in the clear, and the hashes are
// argon2id PHC strings with the OWASP parameters and a 16-byte salt.
func TestStoredRecordsHoldHashesOnly(t *testing.T) {
	ctx := testCtx(t)
	kv := teamBucket(t)
	ms := NewMembers(kv)
	const password = "correct horse battery staple"
	addMember(t, ms, Member{Name: "ana", TelegramID: 42}, password)
	token, err := ms.NewToken(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	// salt: 16 bytes = 22 base64 characters; key: 32 bytes = 43.
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	keys := bustest.Keys(t, kv)
	id, _ := parseToken(token)
	if want := []string{"member.ana", "token." + id}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	var hashes []string
	for _, key := range keys {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		raw := string(e.Value())
		secret := strings.TrimPrefix(token, TokenPrefix+id+"_")
		for _, s := range []string{password, "horse", token, secret} {
			if strings.Contains(raw, s) {
				t.Errorf("%s holds %q in the clear: %s", key, s, raw)
			}
		}
		var fields map[string]any
		if err := json.Unmarshal(e.Value(), &fields); err != nil {
			t.Fatal(err)
		}
		h, _ := fields["password_hash"].(string)
		if key != "member.ana" {
			h, _ = fields["hash"].(string)
			if fields["member"] != "ana" {
				t.Errorf("%s: member %v", key, fields["member"])
			}
		}
		if !phc.MatchString(h) {
			t.Errorf("%s: hash %q is not an argon2id PHC string with m=19456,t=2,p=1", key, h)
		}
		hashes = append(hashes, h)
	}
	// The token's hash is of the whole token; the password's of the
	// password (re-derived from the stored salt and parameters).
	if ok, err := verifySecret(hashes[0], password); err != nil || !ok {
		t.Errorf("member hash does not verify the password: %v", err)
	}
	if ok, err := verifySecret(hashes[1], token); err != nil || !ok {
		t.Errorf("token hash does not verify the token: %v", err)
	}
	// The same password hashes differently each time (a fresh salt).
	if hashSecret(password) == hashSecret(password) {
		t.Error("two hashes of one password are equal")
	}
}

func TestSetPassword(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana", Role: RoleAdmin, TelegramID: 9}, "old password")
	if err := ms.SetPassword(ctx, "Ana", "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.CheckPassword(ctx, "ana", "old password"); !errors.Is(err, ErrBadLogin) {
		t.Errorf("old password after SetPassword: %v", err)
	}
	m, err := ms.CheckPassword(ctx, "ana", "new password")
	if err != nil {
		t.Fatal(err)
	}
	if m.Role != RoleAdmin || m.TelegramID != 9 {
		t.Errorf("SetPassword changed the member: %+v", m)
	}
	var ie *InputError
	if err := ms.SetPassword(ctx, "ana", "short"); !errors.As(err, &ie) {
		t.Errorf("short password: %v", err)
	}
}

func TestTokens(t *testing.T) {
	ctx := testCtx(t)
	kv := teamBucket(t)
	ms := NewMembers(kv)
	verifies := countVerifies(ms)
	addMember(t, ms, Member{Name: "ana", Role: RoleAdmin}, "ana-password")
	addMember(t, ms, Member{Name: "bob"}, "bob-password")

	token, err := ms.NewToken(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^bbt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Fatalf("token %q is not bbt_<16 hex>_<43 base64url>", token)
	}
	other, err := ms.NewToken(ctx, "ana")
	if err != nil || other == token {
		t.Fatalf("second token %q, %v", other, err)
	}

	for i := range 3 {
		m, err := ms.ByToken(ctx, token)
		if err != nil || m.Name != "ana" || m.Role != RoleAdmin {
			t.Fatalf("use %d: %+v, %v", i, m, err)
		}
	}
	if n := verifies.Load(); n != 1 {
		t.Errorf("three uses of one token ran argon2 %d times, want 1 (the rest from the cache)", n)
	}

	// A forged secret with a real id must not ride on the cached check.
	forged := token[:len(TokenPrefix)+17] + strings.Repeat("A", 43)
	malformed := []string{"", "bbt_", token + "x", token[:len(token)-1], strings.TrimPrefix(token, "bbt_"),
		"Bearer " + token, "BBT_" + token[4:], forged}
	for _, bad := range malformed {
		if m, err := ms.ByToken(ctx, bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("ByToken(%q) = %+v, %v; want ErrBadToken", bad, m, err)
		}
	}
	if m, err := ms.ByToken(ctx, token); err != nil || m.Name != "ana" {
		t.Errorf("the real token after a forged one: %+v, %v", m, err)
	}

	// The record changing (here rewritten as it was) means argon2 again:
	// the cache holds only for the revision it checked.
	id, _ := parseToken(token)
	e, err := kv.Get(ctx, "token."+id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "token."+id, e.Value()); err != nil {
		t.Fatal(err)
	}
	n := verifies.Load()
	if _, err := ms.ByToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	if verifies.Load() != n+1 {
		t.Error("a token whose record changed was not checked again")
	}

	// Revoked by another process: refused at the very next use, though
	// this instance has it cached.
	if err := NewMembers(kv).RevokeTokens(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{token, other} {
		if m, err := ms.ByToken(ctx, tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("revoked token: %+v, %v; want ErrBadToken", m, err)
		}
	}
	if keys := bustest.Keys(t, kv); bustest.HasPrefix(keys, "token.") {
		t.Errorf("token records left after RevokeTokens: %v", keys)
	}
}

func TestTokenRevokeLeavesOthers(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana"}, "ana-password")
	addMember(t, ms, Member{Name: "bob"}, "bob-password")
	anas, _ := ms.NewToken(ctx, "ana")
	bobs, err := ms.NewToken(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.RevokeTokens(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := ms.ByToken(ctx, anas); !errors.Is(err, ErrBadToken) {
		t.Errorf("ana's revoked token: %v", err)
	}
	if m, err := ms.ByToken(ctx, bobs); err != nil || m.Name != "bob" {
		t.Errorf("bob's token after revoking ana's: %+v, %v", m, err)
	}
}

func TestTokenOfRemovedMember(t *testing.T) {
	ctx := testCtx(t)
	kv := teamBucket(t)
	ms := NewMembers(kv)
	addMember(t, ms, Member{Name: "ana"}, "ana-password")
	token, err := ms.NewToken(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.ByToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := NewMembers(kv).Remove(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if m, err := ms.ByToken(ctx, token); !errors.Is(err, ErrBadToken) {
		t.Errorf("token of a removed member: %+v, %v; want ErrBadToken", m, err)
	}
	if keys := bustest.Keys(t, kv); bustest.HasPrefix(keys, "token.") {
		t.Errorf("Remove left token records: %v", keys)
	}
}

// A token whose record outlived its member (deleting it failed, or it was
// restored from a backup) does not work for a new member of that name.
func TestTokenDoesNotPassToNewMemberOfSameName(t *testing.T) {
	ctx := testCtx(t)
	kv := teamBucket(t)
	ms := NewMembers(kv)
	addMember(t, ms, Member{Name: "ana"}, "ana-password")
	token, err := ms.NewToken(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := parseToken(token)
	saved, err := kv.Get(ctx, "token."+id)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Remove(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "token."+id, saved.Value()); err != nil {
		t.Fatal(err)
	}
	addMember(t, ms, Member{Name: "ana", Role: RoleAdmin}, "new-ana-password")
	if m, err := ms.ByToken(ctx, token); !errors.Is(err, ErrBadToken) {
		t.Errorf("old token for the new ana: %+v, %v; want ErrBadToken", m, err)
	}
}

func TestByChatID(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana", TelegramID: 1001, DiscordID: "2002"}, "ana-password")
	addMember(t, ms, Member{Name: "bob", TelegramID: 1003}, "bob-password")
	addMember(t, ms, Member{Name: "cy", DiscordID: "2004"}, "cy-password")
	tests := []struct {
		name string
		find func() (*Member, bool)
		want string // "" = none
	}{
		{"telegram ana", func() (*Member, bool) { return ms.ByTelegram(ctx, 1001) }, "ana"},
		{"telegram bob", func() (*Member, bool) { return ms.ByTelegram(ctx, 1003) }, "bob"},
		{"telegram unknown", func() (*Member, bool) { return ms.ByTelegram(ctx, 2002) }, ""},
		{"telegram zero matches nobody without one", func() (*Member, bool) { return ms.ByTelegram(ctx, 0) }, ""},
		{"discord ana", func() (*Member, bool) { return ms.ByDiscord(ctx, "2002") }, "ana"},
		{"discord cy", func() (*Member, bool) { return ms.ByDiscord(ctx, "2004") }, "cy"},
		{"discord unknown", func() (*Member, bool) { return ms.ByDiscord(ctx, "1001") }, ""},
		{"discord empty matches nobody without one", func() (*Member, bool) { return ms.ByDiscord(ctx, "") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := tt.find()
			switch {
			case tt.want == "" && (ok || m != nil):
				t.Errorf("found %+v, want nobody", m)
			case tt.want != "" && (!ok || m == nil || m.Name != tt.want):
				t.Errorf("found %+v, %v; want %s", m, ok, tt.want)
			}
		})
	}
	if err := ms.Remove(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if m, ok := ms.ByTelegram(ctx, 1003); ok {
		t.Errorf("removed member found by Telegram id: %+v", m)
	}
}

func TestGeneratePassword(t *testing.T) {
	format := regexp.MustCompile(`^[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]{5}-[a-z2-7]{5}$`)
	seen := map[string]bool{}
	for range 100 {
		p := GeneratePassword()
		if !format.MatchString(p) {
			t.Fatalf("password %q is not four groups of five base32 letters (100 bits)", p)
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
		if err := checkNewPassword(p); err != nil {
			t.Fatalf("a generated password is refused: %v", err)
		}
	}
}

// Stored hashes are checked with their own parameters, within bounds: a
// record asking for absurd ones is refused, not obeyed.
func TestVerifySecretParameters(t *testing.T) {
	h := hashSecret("secret")
	parts := strings.Split(h, "$")
	with := func(params string) string {
		p := slices.Clone(parts)
		p[3] = params
		return strings.Join(p, "$")
	}
	tests := []struct {
		name    string
		encoded string
		ok      bool
		err     bool
	}{
		{"as made", h, true, false},
		{"other parameters give another key", with("m=19456,t=3,p=1"), false, false},
		{"memory bomb", with("m=4194304,t=2,p=1"), false, true},
		{"time bomb", with("m=19456,t=1000,p=1"), false, true},
		{"missing parameter", with("m=19456,t=2"), false, true},
		{"repeated parameter", with("m=19456,m=19456,t=2,p=1"), false, true},
		{"argon2i", strings.Replace(h, "$argon2id$", "$argon2i$", 1), false, true},
		{"other version", strings.Replace(h, "$v=19$", "$v=16$", 1), false, true},
		{"not base64", h[:len(h)-3] + "!!!", false, true},
		{"empty", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := verifySecret(tt.encoded, "secret")
			if ok != tt.ok || (err != nil) != tt.err {
				t.Errorf("verifySecret = %v, %v; want %v, error %v", ok, err, tt.ok, tt.err)
			}
		})
	}
}

// However many sign-ins arrive at once, only a few argon2 checks (19 MiB
// each) run at a time: a flood waits its turn instead of taking memory.
func TestPasswordChecksRunAFewAtATime(t *testing.T) {
	ctx := testCtx(t)
	ms := NewMembers(teamBucket(t))
	addMember(t, ms, Member{Name: "ana"}, "correct horse battery")
	var running, most atomic.Int64
	orig := ms.verify
	ms.verify = func(encoded, secret string) (bool, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // hold the slot, so that the others pile up
		return orig(encoded, secret)
	}
	var wg sync.WaitGroup
	for range 4 * cap(ms.hashing) {
		wg.Go(func() {
			if _, err := ms.CheckPassword(ctx, "ana", "guess"); !errors.Is(err, ErrBadLogin) {
				t.Errorf("a wrong password: %v", err)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > int64(cap(ms.hashing)) || m < 1 {
		t.Fatalf("%d password checks ran at once, want at most %d", m, cap(ms.hashing))
	}
}
