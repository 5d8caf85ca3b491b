package bridge

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/sinks"
	"github.com/bilibridge/bilibridge/sinks/discord"
	"github.com/bilibridge/bilibridge/sinks/telegram"
	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// integration is one configured destination: the sink the runtime
// delivers to and, for a platform that talks back, what listens to it.
type integration struct {
	sink   sinks.Sink
	listen func(context.Context) error // nil: nothing to listen to
}

// buildIntegrations builds every sink the configuration asks for, the
// one place that knows them all (as Alertmanager's
// BuildReceiverIntegrations). Replies of every platform go to the same
// outbox; /status and /read are answered by the same bridge functions.
func (b *Bridge) buildIntegrations(cfg *config.Config, log *slog.Logger) ([]integration, error) {
	var out []integration
	if len(cfg.WebhookURLs) > 0 {
		secrets, err := webhook.ParseSecrets(cfg.WebhookSecret)
		if err != nil {
			return nil, err
		}
		for _, u := range cfg.WebhookURLs {
			s, err := webhook.New(webhook.Config{URL: u, Secrets: secrets, Events: cfg.WebhookEvents, Logger: log})
			if err != nil {
				return nil, err
			}
			out = append(out, integration{sink: s})
		}
	}
	multi := len(b.Accounts) > 1
	status := func() string { return b.statusText(context.Background()) }
	if cfg.TelegramToken != "" {
		tcfg := telegram.Config{
			Token: cfg.TelegramToken, ChatID: int64(cfg.TelegramChatID), APIURL: cfg.TelegramAPIURL,
			AllowedUsers: cfg.TelegramAllowedUsers, State: b.Store.State, Records: b.Store.Records,
			Outbox: b.Outbox, MultiAccount: multi, Status: status, Logger: log, Team: b.Team,
			MarkRead: func(ctx context.Context, uid int64, st int, talker uint64) error {
				acct, err := b.account(uid)
				if err != nil {
					return err
				}
				s, err := acct.Client.SessionDetail(ctx, st, talker)
				if err != nil {
					return err
				}
				return acct.Client.UpdateAck(ctx, st, talker, s.MaxSeqno)
			},
			WebhookURL: cfg.TelegramWebhookURL, WebhookSecret: cfg.TelegramWebhookSecret,
		}
		if b.http != nil {
			// Photos reach the sender through the bridge's own HTTP server,
			// so the file URL (which holds the bot token) never leaves the
			// process.
			tcfg.FileProxyURL = "http://" + localAddr(b.HTTPAddr) + "/telegram/files"
		}
		tg, err := telegram.New(tcfg)
		if err != nil {
			return nil, err
		}
		if b.http != nil {
			b.http.Handle("GET /telegram/files/{id}", tg.FileHandler())
			if tcfg.WebhookURL != "" {
				b.http.Handle("POST /telegram/webhook", tg.WebhookHandler())
			}
		}
		out = append(out, integration{sink: tg, listen: tg.Run})
	}
	if cfg.DiscordToken != "" {
		dc, err := discord.New(discord.Config{
			Token: cfg.DiscordToken, ChannelID: cfg.DiscordChannelID, APIURL: cfg.DiscordAPIURL,
			AllowedUsers: cfg.DiscordAllowedUsers, AllowedRoles: cfg.DiscordAllowedRoles,
			State: b.Store.State, Records: b.Store.Records,
			Outbox: b.Outbox, MultiAccount: multi, Status: status, Logger: log, Team: b.Team,
			MarkRead: func(ctx context.Context, uid int64, st int, talker, seqno uint64) error {
				acct, err := b.account(uid)
				if err != nil {
					return err
				}
				return acct.Client.UpdateAck(ctx, st, talker, seqno)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		out = append(out, integration{sink: dc, listen: dc.Run})
	}
	return out, nil
}
