package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bilibridge/bilibridge/bridge"
	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/send"
	"github.com/bilibridge/bilibridge/sinks/telegram"
)

// telegramSink builds the Telegram sink from TELEGRAM_*; replies go to the
// account whose conversation the topic belongs to.
func telegramSink(cfg *config.Config, a *App, store *bus.Store, outbox send.Submitter, srv *bridge.HTTPServer, log *slog.Logger) (*telegram.Sink, error) {
	chatID, err := strconv.ParseInt(strings.TrimSpace(cfg.TelegramChatID), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("TELEGRAM_CHAT_ID must be a numeric chat id (a supergroup's starts with -100)")
	}
	var allowed []int64
	for _, f := range strings.FieldsFunc(cfg.TelegramAllowedUsers, func(r rune) bool { return r == ',' || r == ' ' }) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("TELEGRAM_ALLOWED_USERS: %q is not a Telegram user id", f)
		}
		allowed = append(allowed, id)
	}
	tcfg := telegram.Config{
		Token: cfg.TelegramToken, ChatID: chatID, APIURL: cfg.TelegramAPIURL,
		AllowedUsers: allowed, State: store.State, Records: store.Records, Logger: log, Outbox: outbox,
		MultiAccount: len(a.Accounts) > 1,
		Status:       func() string { return a.statusText(context.Background()) },
		MarkRead: func(ctx context.Context, uid int64, st int, talker uint64) error {
			acct := a.account(uid)
			if acct == nil {
				return fmt.Errorf("account %d is not served by this bridge", uid)
			}
			s, err := acct.Client.SessionDetail(ctx, st, talker)
			if err != nil {
				return err
			}
			return acct.Client.UpdateAck(ctx, st, talker, s.MaxSeqno)
		},
	}
	if cfg.TelegramWebhookURL != "" {
		if srv == nil {
			return nil, fmt.Errorf("TELEGRAM_WEBHOOK_URL needs HTTP_ADDR: Telegram posts updates to the bridge's HTTP server")
		}
		tcfg.WebhookURL, tcfg.WebhookSecret = cfg.TelegramWebhookURL, cfg.TelegramWebhookSecret
	}
	if srv != nil {
		// Photos reach the sender through the bridge's own HTTP server, so
		// the file URL (which holds the bot token) never leaves the process.
		tcfg.FileProxyURL = "http://" + localAddr(a.HTTPAddr) + "/telegram/files"
	}
	tg, err := telegram.New(tcfg)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		srv.Handle("GET /telegram/files/{id}", tg.FileHandler())
		if tcfg.WebhookURL != "" {
			srv.Handle("POST /telegram/webhook", tg.WebhookHandler())
		}
	}
	return tg, nil
}

// account returns the account with uid, or nil.
func (a *App) account(uid int64) *Account {
	for _, acct := range a.Accounts {
		if acct.UID == uid {
			return acct
		}
	}
	return nil
}

// statusText answers /status: each account's login and last good poll,
// and how many send commands wait in the outbox.
func (a *App) statusText(ctx context.Context) string {
	var b strings.Builder
	for _, acct := range a.Accounts {
		st := acct.Poller.Status()
		login := "login OK"
		if !st.LoginValid {
			login = "LOGIN EXPIRED — run `bilibridge login`"
		}
		last := "no successful poll yet"
		if !st.LastGoodPoll.IsZero() {
			last = "last good poll " + time.Since(st.LastGoodPoll).Round(time.Second).String() + " ago"
		}
		name := acct.Name
		if name == "" {
			name = "account"
		}
		fmt.Fprintf(&b, "%s (uid %d): %s, %s\n", name, acct.UID, login, last)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if info, err := a.Store.Outbox.Info(ctx); err == nil {
		fmt.Fprintf(&b, "Replies waiting to be sent: %d\n", info.State.Msgs)
	}
	return strings.TrimSpace(b.String())
}

// localAddr is addr as a client on this host dials it: an unspecified
// listen address (0.0.0.0, ::) becomes loopback.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
