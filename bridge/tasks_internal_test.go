package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTasks(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context) error
		want string // in Wait's error; "" for none
	}{
		{"stopped while starting", func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("creating consumer: %w", ctx.Err())
		}, ""},
		{"a failure", func(context.Context) error { return errors.New("disk full") }, "worker: disk full"},
		{"a panic", func(context.Context) error { panic("boom") }, "worker panicked: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			ts := &tasks{ctx: ctx, cancel: cancel}
			ts.Go("worker", func() error { return tc.fn(ctx) })
			if tc.want == "" {
				cancel()
			}
			err := ts.Wait()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Wait: %v, want %q", err, tc.want)
			}
		})
	}
}
