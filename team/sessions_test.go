package team_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/team"
	"github.com/bilibridge/bilibridge/team/teamtest"
)

func TestSessions(t *testing.T) {
	r := teamtest.New(t)
	ctx := context.Background()
	if err := r.Members.Add(ctx, team.Member{Name: "ana", Role: team.RoleAdmin}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	s := team.NewSessions(r.Store.Sessions, r.Members)
	if _, _, err := s.Start(ctx, "ana", "wrong password"); !errors.Is(err, team.ErrBadLogin) {
		t.Fatalf("a wrong password: %v", err)
	}
	if _, _, err := s.Start(ctx, "zoe", "correct horse battery"); !errors.Is(err, team.ErrBadLogin) {
		t.Fatalf("an unknown member: %v", err)
	}
	tok, sess, err := s.Start(ctx, "ANA", "correct horse battery")
	if err != nil || sess.Member != "ana" || sess.Role != team.RoleAdmin || len(sess.CSRF) < 20 {
		t.Fatalf("Start: %+v %v", sess, err)
	}
	// Another process knows the session; the bucket holds no token.
	other := team.NewSessions(r.Store.Sessions, team.NewMembers(r.Store.Team))
	got, err := other.Get(ctx, tok)
	if err != nil || got.Member != "ana" || got.CSRF != sess.CSRF {
		t.Fatalf("Get from another process: %+v %v", got, err)
	}
	for _, k := range bustest.Keys(t, r.Store.Sessions) {
		e, _ := r.Store.Sessions.Get(ctx, k)
		if strings.Contains(k, tok) || strings.Contains(string(e.Value()), tok) {
			t.Fatal("the session token is stored in the bucket")
		}
	}
	for _, bad := range []string{"", "x", tok + "x", strings.Repeat("a", 500)} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, team.ErrBadToken) {
			t.Errorf("Get(%q): %v, want ErrBadToken", bad, err)
		}
	}

	// Signing out ends it.
	if err := s.End(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, tok); !errors.Is(err, team.ErrBadToken) {
		t.Errorf("after End: %v", err)
	}

	// A new password ends every session.
	tok, _, _ = s.Start(ctx, "ana", "correct horse battery")
	if err := r.Members.SetPassword(ctx, "ana", "a new one, long enough"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, tok); !errors.Is(err, team.ErrBadToken) {
		t.Errorf("after a password change: %v", err)
	}

	// A removed member's session does not pass to a new member of the name.
	tok, _, _ = s.Start(ctx, "ana", "a new one, long enough")
	if err := r.Members.Remove(ctx, "ana"); err != nil {
		t.Fatal(err)
	}
	if err := r.Members.Add(ctx, team.Member{Name: "ana"}, "a new one, long enough"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, tok); !errors.Is(err, team.ErrBadToken) {
		t.Errorf("a removed member's session: %v", err)
	}
}
