package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/config"
)

func valid() config.Config {
	return config.Defaults()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*config.Config) {}, ""},
		{"fast poll refused", func(c *config.Config) { c.PollInterval = 3 * time.Second }, "POLL_UNSAFE"},
		{"fast poll allowed when unsafe", func(c *config.Config) { c.PollInterval = 3 * time.Second; c.PollUnsafe = true }, ""},
		{"start from", func(c *config.Config) { c.StartFrom = "all" }, "START_FROM"},
		{"replicas", func(c *config.Config) { c.NATSReplicas = 7 }, "NATS_REPLICAS"},
		{"prefix with a dot", func(c *config.Config) { c.Prefix = "a.b" }, "SUBJECT_PREFIX"},
		{"short stream age", func(c *config.Config) { c.StreamMaxAge = time.Minute }, "STREAM_MAX_AGE"},
		{"give-up too short", func(c *config.Config) { c.DeliveryGiveUp = time.Second }, "DELIVERY_GIVE_UP"},
		{"give-up beyond the stream", func(c *config.Config) { c.DeliveryGiveUp = 800 * time.Hour }, "DELIVERY_GIVE_UP"},
		{"give-up of a week", func(c *config.Config) { c.DeliveryGiveUp = 7 * 24 * time.Hour }, ""},
		{"lease too short", func(c *config.Config) { c.LeaseTTL = time.Second }, "LEASE_TTL"},

		// NATS access: the embedded server's listener and the login.
		{"embedded, loopback, no login", func(c *config.Config) { c.NATSListen = "127.0.0.1:4222" }, ""},
		{"embedded, other loopback address", func(c *config.Config) { c.NATSListen = "127.0.0.2:4222" }, ""},
		{"embedded, localhost", func(c *config.Config) { c.NATSListen = "localhost:4222" }, ""},
		{"embedded, IPv6 loopback", func(c *config.Config) { c.NATSListen = "[::1]:4222" }, ""},
		{"embedded, in-process only", func(c *config.Config) { c.NATSListen = "off" }, ""},
		{"embedded, every interface, no login", func(c *config.Config) { c.NATSListen = "0.0.0.0:4222" },
			"NATS_LISTEN=0.0.0.0:4222 is reachable from other hosts: set NATS_USER and NATS_PASSWORD (or keep NATS_LISTEN on 127.0.0.1)"},
		{"embedded, empty host, no login", func(c *config.Config) { c.NATSListen = ":4222" }, "NATS_LISTEN=:4222 is reachable"},
		{"embedded, IPv6 any, no login", func(c *config.Config) { c.NATSListen = "[::]:4222" }, "NATS_LISTEN=[::]:4222 is reachable"},
		{"embedded, a LAN address, no login", func(c *config.Config) { c.NATSListen = "192.168.1.5:4222" }, "NATS_LISTEN=192.168.1.5:4222 is reachable"},
		{"embedded, a host name, no login", func(c *config.Config) { c.NATSListen = "nats.internal:4222" }, "NATS_LISTEN=nats.internal:4222 is reachable"},
		{"embedded, every interface, with login", func(c *config.Config) {
			c.NATSListen, c.NATSUser, c.NATSPassword = "0.0.0.0:4222", "ops", "pw"
		}, ""},
		{"embedded, loopback, with login", func(c *config.Config) { c.NATSUser, c.NATSPassword = "ops", "pw" }, ""},
		{"embedded, malformed listen", func(c *config.Config) { c.NATSListen = "0.0.0.0" }, "NATS_LISTEN=0.0.0.0: want host:port"},
		{"embedded, bad port", func(c *config.Config) { c.NATSListen = "127.0.0.1:http" }, "bad port"},
		{"user without password", func(c *config.Config) { c.NATSListen, c.NATSUser = "0.0.0.0:4222", "ops" },
			"set both NATS_USER and NATS_PASSWORD, or neither"},
		{"password without user", func(c *config.Config) { c.NATSPassword = "pw" }, "set both NATS_USER and NATS_PASSWORD"},
		{"external, with login", func(c *config.Config) {
			c.NATSURL, c.NATSListen, c.NATSUser, c.NATSPassword = "nats://n:4222", "0.0.0.0:4222", "ops", "pw"
		}, ""},
		{"external: the listener is unused", func(c *config.Config) { c.NATSURL, c.NATSListen = "nats://n:4222", "0.0.0.0:4222" }, ""},
		{"external, user without password", func(c *config.Config) { c.NATSURL, c.NATSUser = "nats://n:4222", "ops" }, "set both"},
		{"external, creds file", func(c *config.Config) { c.NATSURL, c.NATSCreds = "nats://n:4222", "/run/nats.creds" }, ""},
		{"creds file and login", func(c *config.Config) {
			c.NATSURL, c.NATSCreds, c.NATSUser, c.NATSPassword = "nats://n:4222", "/run/nats.creds", "ops", "pw"
		}, "NATS_CREDS and NATS_USER/NATS_PASSWORD are both set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// TestLoadRefusesReachableNATSWithoutLogin: the refusal comes from Load,
// before anything starts, in one sentence.
func TestLoadRefusesReachableNATSWithoutLogin(t *testing.T) {
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("NATS_URL", "")
	t.Setenv("NATS_USER", "")
	t.Setenv("NATS_PASSWORD", "")
	t.Setenv("NATS_LISTEN", "0.0.0.0:4222")
	_, err := config.Load()
	const want = "NATS_LISTEN=0.0.0.0:4222 is reachable from other hosts: set NATS_USER and NATS_PASSWORD (or keep NATS_LISTEN on 127.0.0.1)"
	if err == nil || err.Error() != want {
		t.Fatalf("Load: %v\nwant %s", err, want)
	}
	t.Setenv("NATS_USER", "ops")
	t.Setenv("NATS_PASSWORD", "s3cr3t-nats")
	c, err := config.Load()
	if err != nil {
		t.Fatalf("with a login: %v", err)
	}
	if c.NATSUser != "ops" || c.NATSPassword != "s3cr3t-nats" {
		t.Errorf("login read as %q/%q", c.NATSUser, c.NATSPassword)
	}
}

func TestCredentialsEnvironmentWinsOverFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(file, []byte(`{"SESSDATA":"file-sess","bili_jct":"file-jct","DedeUserID":"42","refresh_token":"rt"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := valid()
	c.CredentialsFile = file
	cr, err := c.Credentials()
	if err != nil || cr.SESSDATA != "file-sess" || cr.UID() != 42 || cr.RefreshToken != "rt" {
		t.Fatalf("from the file: %v %v", cr, err)
	}
	c.SESSDATA, c.BiliJct = "env-sess", "env-jct"
	if cr, err := c.Credentials(); err != nil || cr.SESSDATA != "env-sess" {
		t.Fatalf("environment did not win: %v", err)
	}
	c.BiliJct = ""
	if _, err := c.Credentials(); err == nil {
		t.Error("half a login from the environment accepted")
	}
	c.SESSDATA = ""
	c.CredentialsFile = filepath.Join(dir, "missing.json")
	if _, err := c.Credentials(); !errors.Is(err, config.ErrNoCredentials) {
		t.Errorf("no login: %v", err)
	}
	if err := os.WriteFile(file, []byte(`{"SESSDATA":`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.CredentialsFile = file
	if _, err := c.Credentials(); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("broken file: %v", err)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	c := valid()
	c.SESSDATA, c.BiliJct, c.APIToken, c.WebhookSecret, c.TelegramToken, c.DiscordToken, c.RefreshToken, c.TelegramWebhookSecret, c.NATSPassword =
		"s3cr3t-sess", "s3cr3t-jct", "s3cr3t-api", "whsec_s3cr3t", "123:s3cr3t", "s3cr3t-discord", "s3cr3t-refresh", "s3cr3t-tghook", "s3cr3t-nats"
	c.NATSURL = "nats://ops:s3cr3t-in-url@nats-1:4222, nats://ops:s3cr3t-in-url@nats-2:4222"
	c.WebhookURLs = config.URLList{"https://hooks.example.com/in?token=s3cr3t-hook"}
	c.TelegramWebhookURL = "https://bridge.example.com/telegram/webhook?k=s3cr3t-tg"
	for _, out := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("secret in %s", out)
		}
	}
}

func TestLoginsFromSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	c := valid()
	c.CredentialsFile = filepath.Join(dir, "credentials.json")
	if got := c.LoginFile(42); got != c.CredentialsFile {
		t.Errorf("first login goes to %s", got)
	}
	write := func(name, uid string) {
		t.Helper()
		body := fmt.Sprintf(`{"SESSDATA":"s%s","bili_jct":"j%s","DedeUserID":"%s"}`, uid, uid, uid)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("credentials.json", "42")
	if got := c.LoginFile(42); got != c.CredentialsFile {
		t.Errorf("a new login of the same account goes to %s", got)
	}
	if got := c.LoginFile(7); got != filepath.Join(dir, "credentials-7.json") {
		t.Errorf("a second account goes to %s", got)
	}
	write("credentials-7.json", "7")
	logins, err := c.Logins()
	if err != nil || len(logins) != 2 || logins[0].Credentials.UID() != 42 || logins[1].Credentials.UID() != 7 || logins[1].File == "" {
		t.Fatalf("logins %+v %v", logins, err)
	}
	c.SESSDATA, c.BiliJct = "env", "env"
	if logins, err := c.Logins(); err != nil || len(logins) != 1 || logins[0].File != "" {
		t.Errorf("the environment should win: %+v %v", logins, err)
	}
}

// A bad setting is refused by Load, before anything starts, in one line
// that names the variable and what it wants, without the library's words.
func TestLoadNamesTheBadVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"POLL_INTERVAL": "abc"}, "POLL_INTERVAL=abc: want a duration such as 6s, 5m or 24h"},
		{map[string]string{"POLL_UNSAFE": "maybe"}, "POLL_UNSAFE=maybe: want true or false"},
		{map[string]string{"TELEGRAM_CHAT_ID": "abc"}, "TELEGRAM_CHAT_ID=abc: want the chat's numeric id"},
		{map[string]string{"TELEGRAM_BOT_TOKEN": "123:abc"}, "TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not"},
		{map[string]string{"TELEGRAM_CHAT_ID": "-1001"}, "TELEGRAM_CHAT_ID is set but TELEGRAM_BOT_TOKEN is not"},
		{map[string]string{"DISCORD_BOT_TOKEN": "x"}, "DISCORD_BOT_TOKEN is set but DISCORD_CHANNEL_ID is not"},
		{map[string]string{"WEBHOOK_SECRET": "whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0"}, "WEBHOOK_URLS is not"},
		{map[string]string{"WEBHOOK_URLS": "https://example.com/h", "WEBHOOK_EVENTS": "foo"}, `WEBHOOK_EVENTS=foo: "foo" is not an event type`},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL=loud: want debug, info, warn or error"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT=xml: want text or json"},
		{map[string]string{"API_TOKEN": "a-long-enough-token", "HTTP_ADDR": "nope"}, "HTTP_ADDR"},
		{map[string]string{"API_TOKEN": "hunter2"}, "API_TOKEN is too short (7 characters): use at least 16"},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			t.Setenv("DATA_DIR", t.TempDir())
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := config.Load()
			if err == nil {
				t.Fatal("Load accepted it")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "envconfig") || strings.Count(msg, "\n") > 0 {
				t.Errorf("Load: %q, want one line with %q", msg, tc.want)
			}
		})
	}
}
