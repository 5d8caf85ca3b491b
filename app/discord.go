package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/bilibridge/bilibridge/bus"
	"github.com/bilibridge/bilibridge/config"
	"github.com/bilibridge/bilibridge/sinks/discord"
)

// discordSink builds the Discord sink from DISCORD_*; replies go to the
// account whose conversation the thread belongs to.
func discordSink(cfg *config.Config, a *App, store *bus.Store, log *slog.Logger) (*discord.Sink, error) {
	dc, err := discord.New(discord.Config{
		Token: cfg.DiscordToken, ChannelID: strings.TrimSpace(cfg.DiscordChannelID), APIURL: cfg.DiscordAPIURL,
		AllowedUsers: discord.SplitIDs(cfg.DiscordAllowedUsers), AllowedRoles: discord.SplitIDs(cfg.DiscordAllowedRoles),
		State: store.State, Records: store.Records,
		Outbox:       a.Outbox,
		Status:       func() string { return a.statusText(context.Background()) },
		MultiAccount: len(a.Accounts) > 1,
		MarkRead: func(ctx context.Context, uid int64, st int, talker, seqno uint64) error {
			acct := a.account(uid)
			if acct == nil {
				return fmt.Errorf("account %d is not served by this bridge", uid)
			}
			return acct.Client.UpdateAck(ctx, st, talker, seqno)
		},
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("DISCORD_BOT_TOKEN / DISCORD_CHANNEL_ID: %w", err)
	}
	return dc, nil
}
