package team_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/team"
)

func TestParseCommand(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	now := time.Date(2026, 11, 28, 22, 30, 0, 0, loc)
	for _, tc := range []struct {
		text    string
		ok      bool
		want    team.Action
		wantErr bool
	}{
		{text: "/claim", ok: true, want: team.Action{Kind: team.ActClaim}},
		{text: "/claim@bilibridge_bot", ok: true, want: team.Action{Kind: team.ActClaim}},
		{text: "  /CLAIM  ", ok: true, want: team.Action{Kind: team.ActClaim}},
		{text: "/assign ana", ok: true, want: team.Action{Kind: team.ActAssign, Assignee: "ana"}},
		{text: "/assign @ana", ok: true, want: team.Action{Kind: team.ActAssign, Assignee: "ana"}},
		{text: "/assign", ok: true, wantErr: true},
		{text: "/unassign", ok: true, want: team.Action{Kind: team.ActAssign}},
		{text: "/done", ok: true, want: team.Action{Kind: team.ActStatus, Status: "done"}},
		{text: "/reopen", ok: true, want: team.Action{Kind: team.ActStatus, Status: "open"}},
		{text: "/snooze 2h", ok: true, want: team.Action{Kind: team.ActStatus, Status: "snoozed", Until: now.Add(2 * time.Hour)}},
		{text: "/snooze 30m", ok: true, want: team.Action{Kind: team.ActStatus, Status: "snoozed", Until: now.Add(30 * time.Minute)}},
		{text: "/snooze 1d", ok: true, want: team.Action{Kind: team.ActStatus, Status: "snoozed", Until: now.Add(24 * time.Hour)}},
		{text: "/snooze 1w", ok: true, want: team.Action{Kind: team.ActStatus, Status: "snoozed", Until: now.Add(7 * 24 * time.Hour)}},
		{text: "/snooze tomorrow", ok: true, want: team.Action{Kind: team.ActStatus, Status: "snoozed", Until: time.Date(2026, 11, 29, 9, 0, 0, 0, loc)}},
		{text: "/snooze", ok: true, wantErr: true},
		{text: "/snooze soon", ok: true, wantErr: true},
		{text: "/snooze 0d", ok: true, wantErr: true},
		{text: "/snooze -2h", ok: true, wantErr: true},
		{text: "/snooze 400d", ok: true, wantErr: true},
		{text: "/note asked for the invoice", ok: true, want: team.Action{Kind: team.ActNote, Note: "asked for the invoice"}},
		{text: "/note", ok: true, wantErr: true},
		{text: "/status", ok: false},
		{text: "thanks, we will look into it", ok: false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got, ok, err := team.ParseCommand(tc.text, now, loc)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			var ie *team.InputError
			if tc.wantErr != (err != nil) || (err != nil && !errors.As(err, &ie)) {
				t.Fatalf("err = %v, want an InputError: %v", err, tc.wantErr)
			}
			if !tc.wantErr && (got.Kind != tc.want.Kind || got.Assignee != tc.want.Assignee || got.Status != tc.want.Status ||
				got.Note != tc.want.Note || !got.Until.Equal(tc.want.Until)) {
				t.Fatalf("ParseCommand = %+v, want %+v", got, tc.want)
			}
		})
	}
}
