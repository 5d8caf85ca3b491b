package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/bilibridge/bilibridge/events"
	"github.com/bilibridge/bilibridge/redact"
)

// The list types below parse themselves (envconfig.Decoder), so a bad
// entry is refused at start with a sentence of ours, not later by the
// part that uses it.

// IDList is a list of numeric ids separated by commas or spaces
// (TELEGRAM_ALLOWED_USERS).
type IDList []int64

// Decode implements envconfig.Decoder.
func (l *IDList) Decode(s string) error {
	*l = nil
	for _, f := range splitList(s) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a numeric id", f)
		}
		*l = append(*l, id)
	}
	return nil
}

// ChatID is a Telegram chat id (TELEGRAM_CHAT_ID); empty is none, as in
// the .env file a user copies from .env.example.
type ChatID int64

// Decode implements envconfig.Decoder.
func (c *ChatID) Decode(s string) error {
	*c = 0
	if s = strings.TrimSpace(s); s == "" {
		return nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("want the chat's numeric id")
	}
	*c = ChatID(id)
	return nil
}

// Snowflakes is a list of Discord ids (numeric strings) separated by
// commas or spaces (DISCORD_ALLOWED_USERS, DISCORD_ALLOWED_ROLES).
type Snowflakes []string

// Decode implements envconfig.Decoder.
func (l *Snowflakes) Decode(s string) error {
	*l = nil
	for _, f := range splitList(s) {
		if _, err := strconv.ParseUint(f, 10, 64); err != nil {
			return fmt.Errorf("%q is not a Discord id (copy it with Developer Mode on: a number like 123456789012345678)", f)
		}
		*l = append(*l, f)
	}
	return nil
}

// URLList is a comma-separated list of absolute http or https URLs, none
// repeated (WEBHOOK_URLS).
type URLList []string

// Decode implements envconfig.Decoder.
func (l *URLList) Decode(s string) error {
	*l = nil
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u, err := url.Parse(f)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%q is not an absolute http or https URL", redact.URLString(f))
		}
		if slices.Contains(*l, f) {
			return fmt.Errorf("%q is listed twice", redact.URLString(f))
		}
		*l = append(*l, f)
	}
	return nil
}

// EventTypes is a comma-separated list of event types (WEBHOOK_EVENTS).
type EventTypes []string

// Decode implements envconfig.Decoder.
func (l *EventTypes) Decode(s string) error {
	*l = nil
	for _, f := range splitList(s) {
		if !slices.Contains(events.Types, f) {
			return fmt.Errorf("%q is not an event type; known: %s", f, strings.Join(events.Types, ", "))
		}
		*l = append(*l, f)
	}
	return nil
}

// splitList splits on commas and white space and drops empty entries.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// plainParseError turns envconfig's error into one sentence naming the
// variable, without the library's internals.
func plainParseError(err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("configuration: %w", err)
	}
	value := pe.Value
	if secretVariables[pe.KeyName] {
		value = "(hidden)"
	}
	var reason string
	switch pe.TypeName { // reflect's String of the field's type
	case "time.Duration":
		reason = "want a duration such as 6s, 5m or 24h"
	case "bool":
		reason = "want true or false"
	case "int", "int64", "uint64":
		reason = "want a whole number"
	default:
		reason = unwrapAll(pe.Err).Error()
	}
	if pe.KeyName == "TELEGRAM_CHAT_ID" {
		reason = "want the chat's numeric id (a supergroup's starts with -100; the bot's getUpdates shows it)"
	}
	return fmt.Errorf("%s=%s: %s", pe.KeyName, value, reason)
}

func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// secretVariables never have their value shown.
var secretVariables = map[string]bool{
	"BILI_SESSDATA": true, "BILI_JCT": true, "BILI_REFRESH_TOKEN": true, "API_TOKEN": true,
	"TELEGRAM_BOT_TOKEN": true, "TELEGRAM_WEBHOOK_SECRET": true, "DISCORD_BOT_TOKEN": true,
	"WEBHOOK_SECRET": true, "NATS_PASSWORD": true,
}

// checkSinks finds half-configured sinks and malformed sink settings:
// each would otherwise start silently without the sink, or fail after
// NATS and polling are running.
func (c *Config) checkSinks() []error {
	var errs []error
	switch {
	case c.TelegramToken != "" && c.TelegramChatID == 0:
		errs = append(errs, errors.New("TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not: set the chat's numeric id (a supergroup's starts with -100), or unset TELEGRAM_BOT_TOKEN"))
	case c.TelegramToken == "" && c.TelegramChatID != 0:
		errs = append(errs, errors.New("TELEGRAM_CHAT_ID is set but TELEGRAM_BOT_TOKEN is not: set the bot token from @BotFather, or unset TELEGRAM_CHAT_ID"))
	}
	if c.TelegramToken == "" && (len(c.TelegramAllowedUsers) > 0 || c.TelegramWebhookURL != "") {
		errs = append(errs, errors.New("TELEGRAM_ALLOWED_USERS or TELEGRAM_WEBHOOK_URL is set but the Telegram sink is not: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID"))
	}
	if c.TelegramWebhookURL != "" {
		if u, err := url.Parse(c.TelegramWebhookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("TELEGRAM_WEBHOOK_URL=%s: Telegram only calls absolute https URLs", redact.URLString(c.TelegramWebhookURL)))
		}
		if !validTelegramSecret(c.TelegramWebhookSecret) {
			errs = append(errs, errors.New("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - when TELEGRAM_WEBHOOK_URL is set"))
		}
		if c.HTTPAddr == "" {
			errs = append(errs, errors.New("TELEGRAM_WEBHOOK_URL needs HTTP_ADDR: Telegram posts updates to the bridge's HTTP server"))
		}
	}
	switch {
	case c.DiscordToken != "" && c.DiscordChannelID == "":
		errs = append(errs, errors.New("DISCORD_BOT_TOKEN is set but DISCORD_CHANNEL_ID is not: set the id of the text or forum channel to post to, or unset DISCORD_BOT_TOKEN"))
	case c.DiscordToken == "" && c.DiscordChannelID != "":
		errs = append(errs, errors.New("DISCORD_CHANNEL_ID is set but DISCORD_BOT_TOKEN is not: set the bot token from the Discord developer portal, or unset DISCORD_CHANNEL_ID"))
	}
	if c.DiscordChannelID != "" {
		if _, err := strconv.ParseUint(c.DiscordChannelID, 10, 64); err != nil {
			errs = append(errs, fmt.Errorf("DISCORD_CHANNEL_ID=%s is not a Discord id (a number like 123456789012345678)", c.DiscordChannelID))
		}
	}
	if c.DiscordToken == "" && (len(c.DiscordAllowedUsers) > 0 || len(c.DiscordAllowedRoles) > 0) {
		errs = append(errs, errors.New("DISCORD_ALLOWED_USERS or DISCORD_ALLOWED_ROLES is set but the Discord sink is not: set DISCORD_BOT_TOKEN and DISCORD_CHANNEL_ID"))
	}
	if len(c.WebhookURLs) == 0 && (c.WebhookSecret != "" || len(c.WebhookEvents) > 0) {
		errs = append(errs, errors.New("WEBHOOK_SECRET or WEBHOOK_EVENTS is set but WEBHOOK_URLS is not: set the endpoints to deliver to"))
	}
	for i, f := range strings.Fields(c.WebhookSecret) {
		if !validWebhookSecret(f) {
			errs = append(errs, fmt.Errorf("WEBHOOK_SECRET: secret %d is not whsec_ followed by base64; generate one with: echo whsec_$(openssl rand -base64 32)", i+1))
		}
	}
	return errs
}

func validTelegramSecret(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// validWebhookSecret accepts what the webhook sink can use: base64,
// usually after the Standard Webhooks prefix whsec_.
func validWebhookSecret(s string) bool {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	return err == nil && len(b) > 0
}

// checkLog checks LOG_LEVEL and LOG_FORMAT.
func (c *Config) checkLog() []error {
	var errs []error
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%s: want debug, info, warn or error", c.LogLevel))
	}
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT=%s: want text or json", c.LogFormat))
	}
	return errs
}

// Defaults returns the configuration of an empty environment: every
// variable at its default. Tests and the demo start from it.
func Defaults() Config {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		def, ok := t.Field(i).Tag.Lookup("default")
		if !ok {
			continue
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(def)
			if err != nil {
				panic("config: bad default of " + t.Field(i).Name)
			}
			f.SetInt(int64(d))
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(def)
		case reflect.Bool:
			f.SetBool(def == "true")
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(def, 10, 64)
			if err != nil {
				panic("config: bad default of " + t.Field(i).Name)
			}
			f.SetInt(n)
		default:
			panic("config: no default parser for " + t.Field(i).Name)
		}
	}
	c.CredentialsFile = ""
	return c
}
