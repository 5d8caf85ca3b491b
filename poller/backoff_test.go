package poller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/bus/bustest"
	"github.com/bilibridge/bilibridge/events"
)

// failingAPI answers every call with err and counts the calls.
type failingAPI struct {
	API
	err   error
	calls int
}

func (f *failingAPI) NewSessions(context.Context, int64, int) (*bilibili.SessionPage, error) {
	f.calls++
	return nil, f.err
}

func (f *failingAPI) GetSessions(context.Context, bilibili.GetSessionsParams) (*bilibili.SessionPage, error) {
	f.calls++
	return nil, f.err
}

type countingPublisher struct{ n int }

func (c *countingPublisher) Publish(context.Context, string, events.Event) error {
	c.n++
	return nil
}

func TestBackoffOnRiskControlAndTransientErrors(t *testing.T) {
	srv := bustest.StartServer(t)
	store := bustest.Provision(t, srv.Connect(t), time.Second)
	for _, err := range []error{
		&bilibili.APIError{Endpoint: "new_sessions", Code: bilibili.CodeRiskControl},
		&bilibili.APIError{Endpoint: "new_sessions", Code: bilibili.CodeIntercepted},
		&bilibili.HTTPError{Endpoint: "new_sessions", StatusCode: 503},
	} {
		t.Run(err.Error(), func(t *testing.T) {
			api := &failingAPI{err: err}
			pub := &countingPublisher{}
			p := New(Config{AccountUID: 1, API: api, Publisher: pub, Cursors: store.Cursors, Interval: 6 * time.Second, MaxBackoff: 5 * time.Minute})
			want := 6 * time.Second
			for i := 1; i <= 8; i++ {
				perr := p.PollOnce(context.Background())
				if !errors.Is(perr, err) {
					t.Fatalf("poll %d: %v", i, perr)
				}
				d := p.after(context.Background(), perr)
				want = min(want*2, 5*time.Minute)
				if d < want*9/10 || d > want*11/10 {
					t.Errorf("after failure %d: wait %s, want %s ±10%%", i, d, want)
				}
				if api.calls != i {
					t.Errorf("after failure %d: %d calls; a failed poll must not retry on its own", i, api.calls)
				}
			}
			wantStatus := 0
			if bilibili.IsRiskControl(err) {
				wantStatus = 1
			}
			if pub.n != wantStatus {
				t.Errorf("%d status events, want %d", pub.n, wantStatus)
			}
			// Success resets the backoff to the plain interval.
			if d := p.after(context.Background(), nil); d > 6*time.Second*11/10 {
				t.Errorf("after success: wait %s", d)
			}
		})
	}
}
