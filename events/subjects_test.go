package events_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/events"
)

// TestSubjectBuilders pins every builder to the contract strings of design.md.
func TestSubjectBuilders(t *testing.T) {
	def := events.Subjects{}
	custom := events.Subjects{Prefix: "acme"}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"message", def.Message(accountUID, 1, talkerID), "bili.425503913.msg.1.293793435"},
		{"message group", def.Message(accountUID, 2, groupID), "bili.425503913.msg.2.221082140"},
		{"message max talker", def.Message(accountUID, 1, 1<<64-1), "bili.425503913.msg.1.18446744073709551615"},
		{"recall", def.Recall(accountUID, 1, talkerID), "bili.425503913.recall.1.293793435"},
		{"sent", def.Sent(accountUID, 1, talkerID), "bili.425503913.sent.1.293793435"},
		{"send", def.Send(accountUID, 1, talkerID), "bili.425503913.send.1.293793435"},
		{"account", def.Account(accountUID), "bili.425503913.account"},
		{"dead", def.Dead(accountUID, "telegram"), "bili.425503913.dead.telegram"},
		{"dead dotted sink", def.Dead(accountUID, "webhook.example.com"), "bili.425503913.dead.webhook_example_com"},
		{"dead spaced sink", def.Dead(accountUID, "my sink\tone\r\n"), "bili.425503913.dead.my_sink_one__"},
		{"dead wildcard sink", def.Dead(accountUID, "a*b>c"), "bili.425503913.dead.a_b_c"},
		{"dead unicode sink", def.Dead(accountUID, "电报"), "bili.425503913.dead.电报"},
		{"explicit default prefix", events.Subjects{Prefix: events.DefaultPrefix}.Message(accountUID, 1, talkerID), "bili.425503913.msg.1.293793435"},
		{"custom message", custom.Message(accountUID, 1, talkerID), "acme.425503913.msg.1.293793435"},
		{"custom recall", custom.Recall(accountUID, 1, talkerID), "acme.425503913.recall.1.293793435"},
		{"custom sent", custom.Sent(accountUID, 1, talkerID), "acme.425503913.sent.1.293793435"},
		{"custom send", custom.Send(accountUID, 1, talkerID), "acme.425503913.send.1.293793435"},
		{"custom account", custom.Account(accountUID), "acme.425503913.account"},
		{"custom dead", custom.Dead(accountUID, "discord"), "acme.425503913.dead.discord"},
		{"custom outbox", custom.Outbox(), "acme.*.send.>"},
		{"custom events", strings.Join(custom.Events(), " "), "acme.*.msg.> acme.*.recall.> acme.*.sent.> acme.*.account acme.*.dead.> acme.*.team.> acme.*.replay.*"},
		{"replay", def.Replay(accountUID, "hooks.example.com"), "bili.425503913.replay.hooks_example_com"},
		{"dead filter", def.DeadFilter(0, ""), "bili.*.dead.*"},
		{"dead filter of a sink", def.DeadFilter(accountUID, "hooks.example.com"), "bili.425503913.dead.hooks_example_com"},
		{"replays", def.Replays("hooks.example.com"), "bili.*.replay.hooks_example_com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
			if !strings.Contains(tc.got, " ") && !validSubject(tc.got) {
				t.Errorf("%q is not a valid NATS subject", tc.got)
			}
		})
	}
}

// TestTokenMakesValidSubjects feeds Dead every kind of awkward sink name;
// the result must be one valid literal token.
func TestTokenMakesValidSubjects(t *testing.T) {
	tests := []struct {
		sink string
	}{
		{sink: "webhook"},
		{sink: "hooks.example.com:8443/x"},
		{sink: " leading and trailing "},
		{sink: "*"},
		{sink: ">"},
		{sink: "tab\there"},
		{sink: "new\nline"},
		{sink: ""},
		{sink: "form\ffeed"},
	}
	s := events.Subjects{}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.sink), func(t *testing.T) {
			subj := s.Dead(accountUID, tc.sink)
			tok := events.Token(tc.sink)
			ok := validLiteral(subj) && strings.Count(subj, ".") == 3 && strings.HasSuffix(subj, "."+tok)
			if !ok {
				t.Errorf("Dead(%q) = %q, not one valid literal token after dead.", tc.sink, subj)
			}
		})
	}
}

func TestParseSubjectRoundTrip(t *testing.T) {
	for _, s := range []events.Subjects{{}, {Prefix: "acme"}} {
		tests := []struct {
			subject string
			want    events.Route
		}{
			{s.Message(accountUID, 1, talkerID), events.Route{UID: accountUID, Kind: "msg", SessionType: 1, TalkerID: talkerID}},
			{s.Message(accountUID, 2, 1<<64-1), events.Route{UID: accountUID, Kind: "msg", SessionType: 2, TalkerID: 1<<64 - 1}},
			{s.Recall(accountUID, 1, talkerID), events.Route{UID: accountUID, Kind: "recall", SessionType: 1, TalkerID: talkerID}},
			{s.Sent(accountUID, 1, talkerID), events.Route{UID: accountUID, Kind: "sent", SessionType: 1, TalkerID: talkerID}},
			{s.Send(1<<63-1, 2, groupID), events.Route{UID: 1<<63 - 1, Kind: "send", SessionType: 2, TalkerID: groupID}},
			{s.Account(accountUID), events.Route{UID: accountUID, Kind: "account"}},
			{s.Dead(accountUID, "webhook"), events.Route{UID: accountUID, Kind: "dead"}},
			{s.Team(accountUID, 1, talkerID), events.Route{UID: accountUID, Kind: "team", SessionType: 1, TalkerID: talkerID}},
			{s.Replay(accountUID, "webhook"), events.Route{UID: accountUID, Kind: "replay"}},
		}
		for _, tc := range tests {
			t.Run(tc.subject, func(t *testing.T) {
				got, err := s.ParseSubject(tc.subject)
				if err != nil {
					t.Fatalf("ParseSubject: %v", err)
				}
				if got != tc.want {
					t.Errorf("ParseSubject = %+v, want %+v", got, tc.want)
				}
			})
		}
	}
}

func TestParseSubjectErrors(t *testing.T) {
	tests := []struct {
		name    string
		s       events.Subjects
		subject string
	}{
		{name: "empty", subject: ""},
		{name: "prefix only", subject: "bili"},
		{name: "no kind", subject: "bili.425503913"},
		{name: "other prefix", subject: "other.425503913.msg.1.2"},
		{name: "default subject under custom prefix", s: events.Subjects{Prefix: "acme"}, subject: "bili.425503913.msg.1.2"},
		{name: "custom subject under default prefix", subject: "acme.425503913.msg.1.2"},
		{name: "uid not a number", subject: "bili.me.msg.1.2"},
		{name: "uid wildcard", subject: "bili.*.msg.1.2"},
		{name: "uid too large", subject: "bili.9223372036854775808.msg.1.2"},
		{name: "conversation too short", subject: "bili.425503913.msg.1"},
		{name: "conversation too long", subject: "bili.425503913.msg.1.2.3"},
		{name: "session type not a number", subject: "bili.425503913.recall.user.2"},
		{name: "talker negative", subject: "bili.425503913.sent.1.-2"},
		{name: "talker above uint64", subject: "bili.425503913.send.1.18446744073709551616"},
		{name: "talker wildcard", subject: "bili.425503913.msg.1.>"},
		{name: "unknown kind", subject: "bili.425503913.typing.1.2"},
		{name: "account with extra tokens", subject: "bili.425503913.account.extra"},
		{name: "dead without sink", subject: "bili.425503913.dead"},
		{name: "negative uid", subject: "bili.-425503913.msg.1.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.s.ParseSubject(tc.subject)
			if err == nil {
				t.Fatalf("ParseSubject(%q) = %+v, want an error", tc.subject, r)
			}
			if r != (events.Route{}) {
				t.Errorf("ParseSubject returned a partial route %+v beside its error", r)
			}
			if !strings.Contains(err.Error(), "events: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestStreamFilters: stream BILI takes Events(), stream BILI_OUTBOX takes
// Outbox(). JetStream refuses two streams whose subjects overlap, and a
// command on the outbox must never be delivered to a sink as an event.
func TestStreamFilters(t *testing.T) {
	for _, s := range []events.Subjects{{}, {Prefix: "acme"}} {
		t.Run(s.Outbox(), func(t *testing.T) {
			evs, outbox := s.Events(), s.Outbox()
			for _, f := range append(evs, outbox) {
				if !validSubject(f) {
					t.Errorf("filter %q is not a valid NATS subject", f)
				}
			}
			for i, a := range evs {
				if subjectsCollide(a, outbox) {
					t.Errorf("Events() filter %q overlaps Outbox() %q", a, outbox)
				}
				for _, b := range evs[i+1:] {
					if subjectsCollide(a, b) {
						t.Errorf("Events() filters %q and %q overlap", a, b)
					}
				}
			}

			// Every concrete subject lands in exactly one stream, through
			// exactly one filter.
			const uid, other = accountUID, 1<<63 - 1
			inEvents := []string{
				s.Message(uid, 1, talkerID), s.Message(other, 2, 1<<64-1),
				s.Recall(uid, 1, talkerID), s.Sent(uid, 2, groupID),
				s.Account(uid), s.Account(other),
				s.Dead(uid, "telegram"), s.Dead(uid, "hooks.example.com"),
			}
			inOutbox := []string{s.Send(uid, 1, talkerID), s.Send(other, 2, 1<<64-1)}
			for _, subj := range append(inEvents, inOutbox...) {
				n := 0
				for _, f := range evs {
					if subjectMatches(subj, f) {
						n++
					}
				}
				wantEvents, wantOutbox := 1, false
				if strings.Contains(subj, ".send.") {
					wantEvents, wantOutbox = 0, true
				}
				if n != wantEvents {
					t.Errorf("%q matches %d Events() filters, want %d", subj, n, wantEvents)
				}
				if subjectMatches(subj, outbox) != wantOutbox {
					t.Errorf("%q matches Outbox() %q: %v, want %v", subj, outbox, !wantOutbox, wantOutbox)
				}
				if !subjectMatches(subj, s.All()) {
					t.Errorf("%q is not under All() %q", subj, s.All())
				}
			}
			// All() is the catch-all (for tail): it covers the outbox
			// too, so it must never be a stream's subject list beside it.
			if !subjectsCollide(s.All(), outbox) {
				t.Errorf("All() %q should cover Outbox() %q", s.All(), outbox)
			}
			// Subjects outside the contract reach no stream.
			for _, subj := range []string{"other.1.msg.1.2", s.Message(uid, 1, talkerID)[:strings.Index(s.Message(uid, 1, talkerID), ".msg")], strings.Split(outbox, ".")[0] + ".1.sendx.1.2"} {
				for _, f := range append(evs, outbox) {
					if subjectMatches(subj, f) {
						t.Errorf("%q matches filter %q", subj, f)
					}
				}
			}
		})
	}
}

// TestSubjectMatcher checks the test's own NATS matcher against the rules of
// the NATS docs, so the filter tests above mean something.
func TestSubjectMatcher(t *testing.T) {
	matches := []struct {
		subject, filter string
		want            bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "a.*.c", true},
		{"a.b.c", "a.>", true},
		{"a.b.c", ">", true},
		{"a", "a.>", false},
		{"a.b", "a.*.c", false},
		{"a.b.c.d", "a.*.c", false},
		{"a.b.c", "a.b", false},
		{"a.b.c", "*.*.*", true},
	}
	for _, m := range matches {
		if got := subjectMatches(m.subject, m.filter); got != m.want {
			t.Errorf("subjectMatches(%q, %q) = %v", m.subject, m.filter, got)
		}
	}
	collides := []struct {
		a, b string
		want bool
	}{
		{"a.*.msg.>", "a.*.send.>", false},
		{"a.*.>", "a.*.send.>", true},
		{"a.*.account", "a.*.account.>", false},
		{"a.*.account", "a.1.*", true},
		{"a.>", "a", false},
		{"a.*", "*.b", true},
		{"a.b", "a.c", false},
		{">", "x.y.z", true},
	}
	for _, c := range collides {
		if got := subjectsCollide(c.a, c.b); got != c.want {
			t.Errorf("subjectsCollide(%q, %q) = %v", c.a, c.b, got)
		}
		if got := subjectsCollide(c.b, c.a); got != c.want {
			t.Errorf("subjectsCollide(%q, %q) = %v", c.b, c.a, got)
		}
	}
	for _, s := range []string{"", "a..b", "a.", ".a", "a.b c", "a.>.b", "a\f.b", "a.\t"} {
		if validSubject(s) {
			t.Errorf("validSubject(%q) = true", s)
		}
	}
}

// validSubject follows nats-server's IsValidSubject: non-empty tokens, no
// whitespace in them, '>' only last, no NUL.
func validSubject(s string) bool {
	if s == "" || strings.ContainsRune(s, 0) {
		return false
	}
	tok := strings.Split(s, ".")
	for i, t := range tok {
		if t == "" || strings.ContainsAny(t, " \t\n\r\f") {
			return false
		}
		if t == ">" && i != len(tok)-1 {
			return false
		}
	}
	return true
}

// validLiteral is a valid subject without wildcards: one a message can be
// published on.
func validLiteral(s string) bool {
	if !validSubject(s) {
		return false
	}
	for _, t := range strings.Split(s, ".") {
		if t == "*" || t == ">" {
			return false
		}
	}
	return true
}

// subjectMatches reports whether the literal subject matches filter.
func subjectMatches(subject, filter string) bool {
	st, ft := strings.Split(subject, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(st) == len(ft)
}

// subjectsCollide reports whether some literal subject matches both filters.
func subjectsCollide(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		if i == len(at) || i == len(bt) {
			return len(at) == len(bt)
		}
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
}
