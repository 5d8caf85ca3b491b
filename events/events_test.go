package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/events"
)

// The account and conversations the tests talk about: the ids of
// design.md and of the Bilibili fixtures.
const (
	accountUID int64  = 425503913
	talkerID   uint64 = 293793435
	groupID    uint64 = 221082140
	msgTimeRFC        = "2024-03-02T13:20:15Z"
)

// decodeNumbers decodes raw keeping numbers as json.Number.
func decodeNumbers(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return obj
}

func TestParseRejects(t *testing.T) {
	valid := `{"specversion":"1.0","id":"1-2","source":"bilibili://1","type":"com.bilibili.dm.message","time":"2024-03-02T13:20:15Z","datacontenttype":"application/json","data":{}}`
	if _, err := events.Parse([]byte(valid)); err != nil {
		t.Fatalf("Parse(valid) = %v", err)
	}
	tests := []struct {
		name string
		in   string
	}{
		{name: "no source", in: strings.Replace(valid, `"source":"bilibili://1",`, ``, 1)},
		{"empty", ``},
		{"not json", `hello`},
		{"truncated", valid[:len(valid)-10]},
		{"trailing garbage", valid + `x`},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"1.0"`},
		{"empty object", `{}`},
		{"no specversion", strings.Replace(valid, `"specversion":"1.0",`, ``, 1)},
		{"specversion 0.3", strings.Replace(valid, `"1.0"`, `"0.3"`, 1)},
		{"specversion as number", strings.Replace(valid, `"1.0"`, `1.0`, 1)},
		{"no id", strings.Replace(valid, `"id":"1-2",`, ``, 1)},
		{"empty id", strings.Replace(valid, `"id":"1-2"`, `"id":""`, 1)},
		{"numeric id", strings.Replace(valid, `"id":"1-2"`, `"id":12`, 1)},
		{"no type", strings.Replace(valid, `"type":"com.bilibili.dm.message",`, ``, 1)},
		{"bad time", strings.Replace(valid, `2024-03-02T13:20:15Z`, `yesterday`, 1)},
		{"unix time", strings.Replace(valid, `"2024-03-02T13:20:15Z"`, `1709385615`, 1)},
		{"send command", `{"command_id":"c1","text":"hi"}`},
		{"bilibili message", `{"sender_uid":1,"msg_type":1,"content":"{}","msg_key":7354295169819585966}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := events.Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", tc.in, ev)
			}
			if !strings.HasPrefix(err.Error(), "events: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if ev.ID != "" || ev.Type != "" {
				t.Errorf("Parse returned a partial event %+v beside its error", ev)
			}
		})
	}
}

func TestNew(t *testing.T) {
	at := time.Date(2024, 3, 2, 21, 20, 15, 0, time.FixedZone("CST", 8*3600))
	ev, err := events.New(accountUID, events.TypeAccountStatus, "425503913-account-1", "", at,
		events.AccountStatusData{AccountUID: accountUID, State: events.StateLoginExpired, Message: "log in again"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	obj := decodeNumbers(t, raw)
	if obj["time"] != msgTimeRFC {
		t.Errorf("time = %v, want it in UTC: %s", obj["time"], msgTimeRFC)
	}
	if _, ok := obj["subject"]; ok {
		t.Errorf("an empty subject is written: %s", raw)
	}
	if obj["source"] != "bilibili://425503913" || obj["specversion"] != "1.0" || obj["datacontenttype"] != "application/json" {
		t.Errorf("envelope attributes: %s", raw)
	}

	if _, err := events.New(accountUID, events.TypeMessage, "x", "", at, func() {}); err == nil {
		t.Error("New with unencodable data = nil error")
	} else if !strings.Contains(err.Error(), events.TypeMessage) {
		t.Errorf("New error %q does not name the type", err)
	}
}
