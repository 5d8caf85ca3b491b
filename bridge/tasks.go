package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// tasks runs the bridge's long-lived parts; the first one that fails
// stops the others.
type tasks struct {
	wg sync.WaitGroup
	// ctx is the tasks' context: once it ends, a task that returns
	// because it was cancelled has stopped, not failed.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	errs   []error
}

// Go runs fn in its own goroutine; a panic in it is an error, not the end
// of the process.
func (t *tasks) Go(name string, fn func() error) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				t.fail(fmt.Errorf("%s panicked: %v", name, p))
			}
		}()
		err := fn()
		if err != nil && errors.Is(err, context.Canceled) && t.ctx != nil && t.ctx.Err() != nil {
			return // stopped, perhaps while still starting
		}
		if err != nil {
			t.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// fail records err and stops the other tasks.
func (t *tasks) fail(err error) {
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
	t.cancel()
}

// Wait waits for every task and returns their errors.
func (t *tasks) Wait() error {
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return errors.Join(t.errs...)
}
