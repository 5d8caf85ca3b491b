// Package config reads bilibridge's configuration from the environment.
// The variable names are a public contract (docs: README, design.md).
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"

	"github.com/bilibridge/bilibridge/bilibili"
	"github.com/bilibridge/bilibridge/redact"
)

// MinPollInterval is the shortest interval allowed without POLL_UNSAFE:
// faster polling has cost accounts a freeze within an hour.
const MinPollInterval = 5 * time.Second

// minAPIToken is the shortest API_TOKEN accepted.
const minAPIToken = 16

// Config is every setting of bilibridge.
type Config struct {
	DataDir         string `envconfig:"DATA_DIR" default:"./data" desc:"embedded JetStream store and the credentials file"`
	SESSDATA        string `envconfig:"BILI_SESSDATA" desc:"cookie SESSDATA; not needed when a credentials file exists"`
	BiliJct         string `envconfig:"BILI_JCT" desc:"cookie bili_jct; not needed when a credentials file exists"`
	UID             int64  `envconfig:"BILI_UID" desc:"the account's own mid (DedeUserID); default: asked from nav"`
	RefreshToken    string `envconfig:"BILI_REFRESH_TOKEN" desc:"not needed: login keeps the refresh token in the credentials file; ignored with BILI_SESSDATA/BILI_JCT"`
	CredentialsFile string `envconfig:"BILI_CREDENTIALS_FILE" desc:"written by 'bilibridge login' (default $DATA_DIR/credentials.json)"`
	APIURL          string `envconfig:"BILI_API_URL" default:"https://api.vc.bilibili.com" desc:"base URL of the IM host"`
	MainAPIURL      string `envconfig:"BILI_MAIN_API_URL" default:"https://api.bilibili.com" desc:"base URL of the main API host"`
	PassportURL     string `envconfig:"BILI_PASSPORT_URL" default:"https://passport.bilibili.com" desc:"base URL of the login host"`
	WWWURL          string `envconfig:"BILI_WWW_URL" default:"https://www.bilibili.com" desc:"base URL used by cookie refresh"`

	PollInterval time.Duration `envconfig:"POLL_INTERVAL" default:"6s" desc:"time between polls; below 5s is refused unless POLL_UNSAFE=1"`
	PollUnsafe   bool          `envconfig:"POLL_UNSAFE" default:"false" desc:"allow POLL_INTERVAL below 5s (risks the account)"`
	StartFrom    string        `envconfig:"START_FROM" default:"unread" desc:"first start only: unread forwards unread messages, now forwards nothing old"`
	MarkRead     bool          `envconfig:"MARK_READ" default:"false" desc:"mark conversations read on Bilibili once their messages are published"`

	NATSURL      string        `envconfig:"NATS_URL" desc:"external NATS server(s), comma-separated; empty = embedded"`
	NATSCreds    string        `envconfig:"NATS_CREDS" desc:"credentials file for an external NATS"`
	NATSListen   string        `envconfig:"NATS_LISTEN" default:"127.0.0.1:4222" desc:"where the embedded server listens; off = in-process only; not loopback: NATS_USER and NATS_PASSWORD required"`
	NATSUser     string        `envconfig:"NATS_USER" desc:"user the embedded server's listener requires (with NATS_PASSWORD); for an external NATS, the user to connect as"`
	NATSPassword string        `envconfig:"NATS_PASSWORD" desc:"password of NATS_USER"`
	NATSReplicas int           `envconfig:"NATS_REPLICAS" default:"1" desc:"replicas for streams and KV buckets on a cluster"`
	LeaseTTL     time.Duration `envconfig:"LEASE_TTL" default:"30s" desc:"with several bridges: how long a dead bridge keeps its poller and sink leases before another takes over"`
	StreamMaxAge time.Duration `envconfig:"STREAM_MAX_AGE" default:"720h" desc:"how long events stay in stream BILI"`
	Prefix       string        `envconfig:"SUBJECT_PREFIX" default:"bili" desc:"first token of every subject"`

	HTTPAddr string `envconfig:"HTTP_ADDR" default:"127.0.0.1:8080" desc:"health, metrics and API; empty = off"`
	APIToken string `envconfig:"API_TOKEN" desc:"the service token for automations on /api/v1 (at least 16 characters); empty: only members' tokens and browser sessions"`

	TelegramToken         string `envconfig:"TELEGRAM_BOT_TOKEN" desc:"enables the Telegram sink (with TELEGRAM_CHAT_ID)"`
	TelegramChatID        ChatID `envconfig:"TELEGRAM_CHAT_ID" desc:"the forum supergroup (or chat) to post to: its numeric id (a supergroup's starts with -100)"`
	TelegramAPIURL        string `envconfig:"TELEGRAM_API_URL" default:"https://api.telegram.org" desc:"Bot API base URL"`
	TelegramAllowedUsers  IDList `envconfig:"TELEGRAM_ALLOWED_USERS" desc:"Telegram user ids whose messages are sent to Bilibili; empty = no replies"`
	TelegramWebhookURL    string `envconfig:"TELEGRAM_WEBHOOK_URL" desc:"public https URL that reaches POST /telegram/webhook; set: updates by webhook instead of long polling"`
	TelegramWebhookSecret string `envconfig:"TELEGRAM_WEBHOOK_SECRET" desc:"secret token Telegram sends with webhook calls (1-256 of A-Z a-z 0-9 _ -); required with TELEGRAM_WEBHOOK_URL"`

	DiscordToken        string     `envconfig:"DISCORD_BOT_TOKEN" desc:"enables the Discord sink (with DISCORD_CHANNEL_ID)"`
	DiscordChannelID    string     `envconfig:"DISCORD_CHANNEL_ID" desc:"the text or forum channel to post to"`
	DiscordAPIURL       string     `envconfig:"DISCORD_API_URL" default:"https://discord.com" desc:"REST base URL (the gateway address is asked from it)"`
	DiscordAllowedUsers Snowflakes `envconfig:"DISCORD_ALLOWED_USERS" desc:"Discord user ids who may reply"`
	DiscordAllowedRoles Snowflakes `envconfig:"DISCORD_ALLOWED_ROLES" desc:"Discord role ids whose members may reply"`

	WebhookURLs   URLList    `envconfig:"WEBHOOK_URLS" desc:"comma-separated endpoints; enables the webhook sink"`
	WebhookSecret string     `envconfig:"WEBHOOK_SECRET" desc:"whsec_... secret(s), space-separated, for signatures"`
	WebhookEvents EventTypes `envconfig:"WEBHOOK_EVENTS" desc:"comma-separated event types to deliver (default: message events)"`

	DeliveryGiveUp time.Duration `envconfig:"DELIVERY_GIVE_UP" default:"24h" desc:"a sink dead-letters an event this long after its first failed attempt"`

	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

// String never shows a secret.
func (c Config) String() string {
	redacted := c
	for _, s := range []*string{&redacted.SESSDATA, &redacted.BiliJct, &redacted.RefreshToken, &redacted.APIToken,
		&redacted.NATSPassword, &redacted.TelegramToken, &redacted.TelegramWebhookSecret, &redacted.DiscordToken, &redacted.WebhookSecret} {
		if *s != "" {
			*s = "(set)"
		}
	}
	// URLs may carry a login (nats://user:pass@host) or a token in their
	// query (webhook endpoints).
	var nats []string
	for _, u := range strings.Split(redacted.NATSURL, ",") {
		if u != "" {
			nats = append(nats, redact.URLString(strings.TrimSpace(u)))
		}
	}
	redacted.NATSURL = strings.Join(nats, ",")
	redacted.WebhookURLs = nil
	for _, u := range c.WebhookURLs {
		redacted.WebhookURLs = append(redacted.WebhookURLs, redact.URLString(u))
	}
	if redacted.TelegramWebhookURL != "" {
		redacted.TelegramWebhookURL = redact.URLString(redacted.TelegramWebhookURL)
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(redacted))
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

// Load reads the environment and validates it. Every setting is parsed
// and checked here, before anything starts; each mistake is one sentence
// naming its variable.
func Load() (*Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return nil, plainParseError(err)
	}
	if c.CredentialsFile == "" {
		c.CredentialsFile = filepath.Join(c.DataDir, "credentials.json")
	}
	return &c, c.Validate()
}

// Validate checks settings that would otherwise fail late or hurt the account.
func (c *Config) Validate() error {
	var errs []error
	if c.PollInterval < MinPollInterval && !c.PollUnsafe {
		errs = append(errs, fmt.Errorf("POLL_INTERVAL=%s is below %s, which risks a Bilibili account freeze; set POLL_UNSAFE=1 to allow it anyway", c.PollInterval, MinPollInterval))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, errors.New("POLL_INTERVAL must be positive"))
	}
	if c.StartFrom != "unread" && c.StartFrom != "now" {
		errs = append(errs, fmt.Errorf("START_FROM=%q: want unread or now", c.StartFrom))
	}
	if c.HTTPAddr != "" {
		if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("HTTP_ADDR=%q: want host:port, such as 127.0.0.1:8080 (or empty to serve no HTTP)", c.HTTPAddr))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("HTTP_ADDR=%q: the port must be a number up to 65535", c.HTTPAddr))
		}
	}
	if c.NATSReplicas < 1 || c.NATSReplicas > 5 {
		errs = append(errs, fmt.Errorf("NATS_REPLICAS=%d: want 1 to 5", c.NATSReplicas))
	}
	if err := c.checkNATSAccess(); err != nil {
		errs = append(errs, err)
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, ".*> \t") {
		errs = append(errs, fmt.Errorf("SUBJECT_PREFIX=%q must be one subject token", c.Prefix))
	}
	if c.StreamMaxAge < time.Hour {
		errs = append(errs, fmt.Errorf("STREAM_MAX_AGE=%s: want at least 1h", c.StreamMaxAge))
	}
	if c.LeaseTTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("LEASE_TTL=%s: want at least 3s, so that a lease outlives a slow renewal", c.LeaseTTL))
	}
	if c.DeliveryGiveUp < time.Minute || c.DeliveryGiveUp > c.StreamMaxAge {
		errs = append(errs, fmt.Errorf("DELIVERY_GIVE_UP=%s: want between 1m and STREAM_MAX_AGE (%s), since an event must still be in the stream when it is retried", c.DeliveryGiveUp, c.StreamMaxAge))
	}
	if n := utf8.RuneCountInString(c.APIToken); n > 0 && n < minAPIToken {
		// Bearer tokens are not rate-limited: a short one could be guessed.
		errs = append(errs, fmt.Errorf("API_TOKEN is too short (%d characters): use at least %d, for example the output of `openssl rand -hex 32`", n, minAPIToken))
	}
	errs = append(errs, c.checkSinks()...)
	errs = append(errs, c.checkLog()...)
	return errors.Join(errs...)
}

// checkNATSAccess checks the NATS credentials, and that the embedded
// server (no NATS_URL) is not reachable from other hosts without them.
func (c *Config) checkNATSAccess() error {
	if c.NATSCreds != "" && (c.NATSUser != "" || c.NATSPassword != "") {
		return errors.New("NATS_CREDS and NATS_USER/NATS_PASSWORD are both set: set one of them")
	}
	if c.NATSURL != "" {
		return checkNATSLogin(c.NATSUser, c.NATSPassword)
	}
	return CheckNATSListen(c.NATSListen, c.NATSUser, c.NATSPassword)
}

// checkNATSLogin accepts both NATS_USER and NATS_PASSWORD, or
// neither: half a login would fail at the first connection instead.
func checkNATSLogin(user, password string) error {
	if (user == "") != (password == "") {
		return errors.New("set both NATS_USER and NATS_PASSWORD, or neither")
	}
	return nil
}

// CheckNATSListen checks the embedded NATS server's listener (NATS_LISTEN)
// and the credentials it would require: a listener other hosts can reach
// needs them, since whoever connects may read every DM and send as the
// account. The bridge checks it again when it starts the server.
func CheckNATSListen(listen, user, password string) error {
	if err := checkNATSLogin(user, password); err != nil {
		return err
	}
	if listen == "" || listen == "off" {
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("NATS_LISTEN=%s: want host:port, or off", listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("NATS_LISTEN=%s: bad port", listen)
	}
	if user == "" && !IsLoopbackHost(host) {
		return fmt.Errorf("NATS_LISTEN=%s is reachable from other hosts: set NATS_USER and NATS_PASSWORD (or keep NATS_LISTEN on 127.0.0.1)", listen)
	}
	return nil
}

// IsLoopbackHost reports whether a listener on host is reachable from
// this machine only: localhost, 127.0.0.0/8 or ::1. An empty host means
// every interface; a host name other than localhost may resolve anywhere.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Endpoints returns the Bilibili base URLs.
func (c *Config) Endpoints() bilibili.Endpoints {
	return bilibili.Endpoints{API: c.APIURL, MainAPI: c.MainAPIURL, Passport: c.PassportURL, WWW: c.WWWURL}
}

// ErrNoCredentials means neither the environment nor the credentials file
// holds a login.
var ErrNoCredentials = errors.New("no Bilibili login found")

// Credentials returns the login: BILI_SESSDATA/BILI_JCT when set (the
// environment wins), else the credentials file.
func (c *Config) Credentials() (bilibili.Credentials, error) {
	if c.SESSDATA != "" || c.BiliJct != "" {
		if c.SESSDATA == "" || c.BiliJct == "" {
			return bilibili.Credentials{}, errors.New("set both BILI_SESSDATA and BILI_JCT, or neither")
		}
		cr := bilibili.Credentials{SESSDATA: c.SESSDATA, BiliJct: c.BiliJct, RefreshToken: c.RefreshToken}
		if c.UID != 0 {
			cr.DedeUserID = fmt.Sprint(c.UID)
		}
		return cr, nil
	}
	cr, err := ReadCredentials(c.CredentialsFile)
	if errors.Is(err, os.ErrNotExist) {
		return bilibili.Credentials{}, ErrNoCredentials
	}
	if err != nil {
		return bilibili.Credentials{}, err
	}
	if c.UID != 0 && cr.DedeUserID == "" {
		cr.DedeUserID = fmt.Sprint(c.UID)
	}
	return cr, nil
}

// Login is one account's credentials and the file they came from (""
// when they came from the environment).
type Login struct {
	Credentials bilibili.Credentials
	File        string
}

// Logins returns every account to serve. BILI_SESSDATA/BILI_JCT make one
// account (the environment wins). Otherwise each credentials file is an
// account: BILI_CREDENTIALS_FILE and, beside it, every
// credentials-<uid>.json that `bilibridge login` wrote for further accounts.
func (c *Config) Logins() ([]Login, error) {
	if c.CredentialsFromEnv() {
		cr, err := c.Credentials()
		if err != nil {
			return nil, err
		}
		return []Login{{Credentials: cr}}, nil
	}
	files := []string{c.CredentialsFile}
	more, err := filepath.Glob(filepath.Join(filepath.Dir(c.CredentialsFile), "credentials-*.json"))
	if err != nil {
		return nil, err
	}
	files = append(files, more...)
	var out []Login
	for _, f := range files {
		cr, err := ReadCredentials(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.UID != 0 && cr.DedeUserID == "" && f == c.CredentialsFile {
			cr.DedeUserID = fmt.Sprint(c.UID)
		}
		out = append(out, Login{Credentials: cr, File: f})
	}
	if len(out) == 0 {
		return nil, ErrNoCredentials
	}
	return out, nil
}

// LoginFile is where a new login of account uid is saved: the main
// credentials file when it is free or already holds uid, else
// credentials-<uid>.json beside it (another account).
func (c *Config) LoginFile(uid int64) string {
	cr, err := ReadCredentials(c.CredentialsFile)
	if err != nil || cr.UID() == uid || cr.UID() == 0 {
		return c.CredentialsFile
	}
	return filepath.Join(filepath.Dir(c.CredentialsFile), fmt.Sprintf("credentials-%d.json", uid))
}

// CredentialsFromEnv reports whether the login comes from BILI_SESSDATA
// and BILI_JCT rather than the credentials file.
func (c *Config) CredentialsFromEnv() bool { return c.SESSDATA != "" || c.BiliJct != "" }

// ReadCredentials reads a credentials file written by `bilibridge login`.
func ReadCredentials(path string) (bilibili.Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return bilibili.Credentials{}, err
	}
	var cr bilibili.Credentials
	if err := json.Unmarshal(b, &cr); err != nil {
		return bilibili.Credentials{}, fmt.Errorf("credentials file %s is not valid JSON: %w", path, err)
	}
	if !cr.Valid() {
		return bilibili.Credentials{}, fmt.Errorf("credentials file %s lacks SESSDATA or bili_jct", path)
	}
	return cr, nil
}

// usageFormat lists every variable; a "-" stands for "no default".
const usageFormat = "VARIABLE\tDEFAULT\tMEANING\n{{range .}}{{usage_key .}}\t{{with usage_default .}}{{.}}{{else}}-{{end}}\t{{usage_description .}}\n{{end}}"

// Usage writes every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if err := envconfig.Usagef("", &Config{}, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}
