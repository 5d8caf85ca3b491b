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
	return config.Config{PollInterval: 6 * time.Second, StartFrom: "unread", NATSReplicas: 1, Prefix: "bili", StreamMaxAge: 720 * time.Hour, DeliveryGiveUp: 24 * time.Hour}
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
	c.SESSDATA, c.BiliJct, c.APIToken, c.WebhookSecret, c.TelegramToken, c.DiscordToken, c.RefreshToken, c.TelegramWebhookSecret =
		"s3cr3t-sess", "s3cr3t-jct", "s3cr3t-api", "whsec_s3cr3t", "123:s3cr3t", "s3cr3t-discord", "s3cr3t-refresh", "s3cr3t-tghook"
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
