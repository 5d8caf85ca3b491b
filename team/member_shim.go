package team

import "time"

// Member is a person of the team. (Replaced by members.go on merge.)
type Member struct {
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	TelegramID int64     `json:"telegram_id,omitempty"`
	DiscordID  string    `json:"discord_id,omitempty"`
	Created    time.Time `json:"created"`
}
