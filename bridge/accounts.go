package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/account"
	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/poller"
	"github.com/bilibridge/bilibridge/send"
)

// startAccount starts what serves one Bilibili account: its client (with
// a request budget of its own), poller, credentials keeper and sender.
func (b *Bridge) startAccount(ctx context.Context, t *tasks, cfg *config.Config, opts Options, login config.Login,
	images *send.ImageFetcher, calls *CallMetrics, polls *poller.Metrics) error {
	client := bilibili.New(bilibili.Config{
		Credentials: login.Credentials, Endpoints: cfg.Endpoints(), HTTPClient: opts.HTTPClient,
		Logger: b.log, Observe: calls.Observe,
	})
	uid, name, err := identify(ctx, client, b.log)
	if errors.Is(err, ErrLoginRejected) {
		return loginRejected(login.File)
	}
	if err != nil {
		return err
	}
	if _, err := b.account(uid); err == nil {
		return fmt.Errorf("account %d is logged in twice (%s); remove one of its credentials", uid, login.File)
	}
	log := b.log.With("uid", uid)
	if cr := client.Credentials(); cr.DedeUserID == "" {
		cr.DedeUserID = fmt.Sprint(uid)
		client.SetCredentials(cr)
	}
	p := poller.New(poller.Config{
		AccountUID: uid, AccountName: name,
		API: client, Publisher: b.pub,
		Cursors: b.Store.Cursors, Leases: b.Store.Leases, LeaseTTL: cfg.LeaseTTL, Holder: b.holder,
		Subjects: b.Subjects, Interval: cfg.PollInterval, StartFrom: cfg.StartFrom, MarkRead: cfg.MarkRead,
		Logger: log, Metrics: polls,
	})
	b.Accounts = append(b.Accounts, &Account{UID: uid, Name: name, Client: client, Poller: p, FromEnv: login.File == ""})
	t.Go(fmt.Sprintf("poller %d", uid), func() error { return p.Run(ctx) })
	switch {
	case login.File != "":
		keeper := &account.Keeper{
			API: client, File: login.File, Refresh: true, Changed: p.Wake, Log: log, Leader: p.Leader,
			Refresher: &account.Refresher{API: client, File: login.File, Key: opts.RefreshKey, Log: log},
		}
		t.Go(fmt.Sprintf("credentials keeper %d", uid), func() error { return keeper.Run(ctx) })
	case login.Credentials.RefreshToken != "":
		log.Warn("BILI_REFRESH_TOKEN is ignored with BILI_SESSDATA/BILI_JCT: a refresh would end the session the environment holds; use `bilibridge login`, whose credentials file is refreshed automatically")
	}
	sender := send.NewSender(send.SenderConfig{
		AccountUID: uid, API: client, Outbox: b.Store.Outbox, Records: b.Store.Records, State: b.Store.State,
		Publisher: b.pub, Subjects: b.Subjects, Logger: log, Images: images,
	})
	t.Go(fmt.Sprintf("sender %d", uid), func() error { return sender.Run(ctx) })
	log.Info("account running", "account", name, "subjects", fmt.Sprintf("%s.%d.>", b.Subjects.Prefix, uid))
	return nil
}

// account returns the account with uid.
func (b *Bridge) account(uid int64) (*Account, error) {
	for _, acct := range b.Accounts {
		if acct.UID == uid {
			return acct, nil
		}
	}
	return nil, fmt.Errorf("account %d is not served by this bridge", uid)
}

// Ready reports whether NATS is connected and every Bilibili login valid.
func (b *Bridge) Ready() error {
	if !b.Conn.Connected() {
		return errors.New("NATS is not connected")
	}
	for _, acct := range b.Accounts {
		if !acct.Poller.Status().LoginValid {
			if acct.FromEnv {
				return fmt.Errorf("the Bilibili login of account %d has expired: set fresh BILI_SESSDATA and BILI_JCT, or unset them and run `bilibridge login`", acct.UID)
			}
			return fmt.Errorf("the Bilibili login of account %d has expired: run `bilibridge login`", acct.UID)
		}
	}
	return nil
}

// statusText answers /status in the chats: Status for people.
func (b *Bridge) statusText(ctx context.Context) string {
	return strings.TrimSpace(b.Status(ctx).Text(time.Now()))
}

// identify finds the account's uid and name from nav. With an expired
// login the uid from the cookie still lets the bridge start (paused, and
// saying so); without any uid it cannot know its subjects.
func identify(ctx context.Context, c *bilibili.Client, log *slog.Logger) (int64, string, error) {
	wait := time.Second
	for {
		nav, err := c.Nav(ctx)
		switch {
		case err == nil && nav.IsLogin:
			return nav.Mid, nav.Uname, nil
		case bilibili.IsLoginExpired(err) || (err == nil && !nav.IsLogin):
			if uid := c.Credentials().UID(); uid != 0 {
				return uid, "", nil
			}
			return 0, "", ErrLoginRejected
		}
		if uid := c.Credentials().UID(); uid != 0 {
			log.Warn("Bilibili unreachable at start; continuing with the uid from the cookie", "err", err)
			return uid, "", nil
		}
		log.Warn("Bilibili unreachable at start; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}
