package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bilibridge/bilibridge/bilibili"
)

// QRAPI is the part of the Bilibili client the QR login uses.
type QRAPI interface {
	GenerateQR(ctx context.Context) (*bilibili.QRCode, error)
	PollQR(ctx context.Context, key string) (*bilibili.QRStatus, error)
}

// LoginStep is what the person logging in should see now.
type LoginStep int

// Login steps, in the order they usually come.
const (
	StepShowCode  LoginStep = iota // a (new) code to scan: Code is set
	StepScanned                    // scanned; confirm on the phone
	StepConfirmed                  // logged in
	StepExpired                    // the code expired; a new one follows unless attempts ran out
)

// LoginOptions tunes Login.
type LoginOptions struct {
	// Codes is how many QR codes are shown before giving up; default 3.
	Codes int
	// Interval between polls; default 1.5s.
	Interval time.Duration
	// Show is told every change of state.
	Show func(step LoginStep, code *bilibili.QRCode)
}

// ErrQRExpired means every QR code shown expired unscanned.
var ErrQRExpired = errors.New("the QR code expired; run `bilibridge login` again when you have your phone at hand")

// Login runs the web QR login and returns the new credentials, with the
// refresh token. It shows a new code when one expires, a few times at most.
func Login(ctx context.Context, api QRAPI, opts LoginOptions) (bilibili.Credentials, error) {
	if opts.Codes <= 0 {
		opts.Codes = 3
	}
	if opts.Interval <= 0 {
		opts.Interval = 1500 * time.Millisecond
	}
	show := opts.Show
	if show == nil {
		show = func(LoginStep, *bilibili.QRCode) {}
	}
	for range opts.Codes {
		code, err := api.GenerateQR(ctx)
		if err != nil {
			return bilibili.Credentials{}, fmt.Errorf("starting the QR login: %w", err)
		}
		show(StepShowCode, code)
		last := bilibili.QRWaiting
	poll:
		for {
			select {
			case <-ctx.Done():
				return bilibili.Credentials{}, ctx.Err()
			case <-time.After(opts.Interval):
			}
			st, err := api.PollQR(ctx, code.Key)
			if err != nil {
				if bilibili.IsTransient(err) {
					continue // a blip; the code is still good
				}
				return bilibili.Credentials{}, fmt.Errorf("QR login: %w", err)
			}
			if st.State == last {
				continue
			}
			last = st.State
			switch st.State {
			case bilibili.QRScanned:
				show(StepScanned, code)
				continue
			case bilibili.QRConfirmed:
				show(StepConfirmed, code)
				return st.Credentials, nil
			case bilibili.QRExpired:
				show(StepExpired, code)
				break poll
			}
		}
	}
	return bilibili.Credentials{}, ErrQRExpired
}
