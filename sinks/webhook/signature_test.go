package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bilibridge/bilibridge/sinks/webhook"
)

// The published test vector of the Standard Webhooks specification
// (standard-webhooks/standard-webhooks).
const (
	vectorSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID      = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS      = 1614265330
	vectorPayload = `{"test": 2432232314}`
	vectorSig     = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// otherSecret is a second, unrelated key (32 bytes), for rotation.
var otherSecret = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5, 0x3C}, 16))

// specSign signs as the specification reads, independently of the package:
// strip whsec_, base64-decode, HMAC-SHA256 over "id.timestamp.body",
// standard base64.
func specSign(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("test secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// specVerifies reports whether secret produced one of the signatures of a
// received request, checked as the specification reads.
func specVerifies(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	want := specSign(t, secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func mustSecrets(t testing.TB, s ...string) []webhook.Secret {
	t.Helper()
	secs, err := webhook.ParseSecrets(strings.Join(s, " "))
	if err != nil {
		t.Fatalf("ParseSecrets: %v", err)
	}
	return secs
}

func TestStandardWebhooksVector(t *testing.T) {
	ts := strconv.Itoa(vectorTS)
	if got := specSign(t, vectorSecret, vectorID, ts, []byte(vectorPayload)); got != vectorSig {
		t.Fatalf("the test's own signer gives %s, the spec %s", got, vectorSig)
	}
	sec := mustSecrets(t, vectorSecret)[0]
	if got := webhook.Sign(sec, vectorID, time.Unix(vectorTS, 0), []byte(vectorPayload)); got != vectorSig {
		t.Errorf("Sign = %s, want %s", got, vectorSig)
	}
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", vectorSig)
	if err := webhook.Verify([]webhook.Secret{sec}, h, []byte(vectorPayload), 0, time.Unix(vectorTS+10, 0)); err != nil {
		t.Errorf("Verify of the spec's vector: %v", err)
	}
	// Without the prefix the rest is still base64, as in the reference
	// libraries, so both spellings sign alike.
	bare := mustSecrets(t, strings.TrimPrefix(vectorSecret, "whsec_"))[0]
	if got := webhook.Sign(bare, vectorID, time.Unix(vectorTS, 0), []byte(vectorPayload)); got != vectorSig {
		t.Errorf("Sign with the unprefixed secret = %s, want %s", got, vectorSig)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"1-2"}`)
	ts := time.Unix(1_700_000_000, 0)
	a, b := mustSecrets(t, vectorSecret)[0], mustSecrets(t, otherSecret)[0]
	header := func(sig string, ts time.Time) http.Header {
		h := http.Header{}
		h.Set("webhook-id", "1-2")
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	sigA := webhook.Sign(a, "1-2", ts, body)
	sigB := webhook.Sign(b, "1-2", ts, body)
	for _, c := range []struct {
		name      string
		secrets   []webhook.Secret
		h         http.Header
		body      []byte
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{"valid", []webhook.Secret{a}, header(sigA, ts), body, 0, ts, nil},
		{"rotation: second of two signatures", []webhook.Secret{b}, header(sigA+" "+sigB, ts), body, 0, ts, nil},
		{"rotation: receiver holds both keys", []webhook.Secret{b, a}, header(sigA, ts), body, 0, ts, nil},
		{"other versions and junk ignored", []webhook.Secret{a}, header("v1a,AAAA v1,!!! v2,x "+sigA, ts), body, 0, ts, nil},
		{"tampered body", []webhook.Secret{a}, header(sigA, ts), []byte(`{"id":"1-3"}`), 0, ts, webhook.ErrNoMatch},
		{"wrong secret", []webhook.Secret{b}, header(sigA, ts), body, 0, ts, webhook.ErrNoMatch},
		{"no secrets", nil, header(sigA, ts), body, 0, ts, webhook.ErrNoMatch},
		{"signature of another timestamp", []webhook.Secret{a}, header(sigA, ts.Add(time.Second)), body, 0, ts, webhook.ErrNoMatch},
		{"old timestamp", []webhook.Secret{a}, header(sigA, ts), body, 5 * time.Minute, ts.Add(6 * time.Minute), webhook.ErrTimestamp},
		{"old timestamp, default tolerance", []webhook.Secret{a}, header(sigA, ts), body, 0, ts.Add(6 * time.Minute), webhook.ErrTimestamp},
		{"future timestamp", []webhook.Secret{a}, header(sigA, ts), body, time.Minute, ts.Add(-2 * time.Minute), webhook.ErrTimestamp},
		{"within tolerance", []webhook.Secret{a}, header(sigA, ts), body, 5 * time.Minute, ts.Add(4 * time.Minute), nil},
		{"negative tolerance skips the check", []webhook.Secret{a}, header(sigA, ts), body, -1, ts.Add(48 * time.Hour), nil},
		{"malformed timestamp", []webhook.Secret{a}, func() http.Header { h := header(sigA, ts); h.Set("webhook-timestamp", "soon"); return h }(), body, 0, ts, webhook.ErrTimestamp},
		{"no signature header", []webhook.Secret{a}, header("", ts), body, 0, ts, webhook.ErrMissingHeaders},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := webhook.Verify(c.secrets, c.h, c.body, c.tolerance, c.now)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseSecrets(t *testing.T) {
	for _, c := range []struct {
		in      string
		n       int
		wantErr bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{vectorSecret, 1, false},
		{vectorSecret + "  \t" + otherSecret + "\n", 2, false},
		{strings.TrimPrefix(vectorSecret, "whsec_"), 1, false},
		{"whsec_", 0, true},
		{"whsec_not*base64!", 0, true},
		{"hunter2", 0, true},
		{vectorSecret + " whsec_%%%%", 0, true},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", 0, true}, // bad padding
	} {
		t.Run(fmt.Sprintf("%q", c.in), func(t *testing.T) {
			secs, err := webhook.ParseSecrets(c.in)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error: %v", err, c.wantErr)
			}
			if len(secs) != c.n {
				t.Errorf("%d secrets, want %d", len(secs), c.n)
			}
			if err != nil {
				for _, f := range strings.Fields(c.in) {
					if len(f) > 6 && strings.Contains(err.Error(), strings.TrimPrefix(f, "whsec_")) {
						t.Errorf("error quotes the secret: %v", err)
					}
				}
			}
		})
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	secs := mustSecrets(t, vectorSecret, otherSecret)
	key := strings.TrimPrefix(vectorSecret, "whsec_")
	raw, _ := base64.StdEncoding.DecodeString(key)
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%T"} {
		out = append(out, fmt.Sprintf(verb, secs[0]), fmt.Sprintf(verb, secs), fmt.Sprintf(verb, &secs[0]))
	}
	out = append(out, secs[0].String(), secs[0].GoString(), fmt.Sprintf("%+v", webhook.Config{URL: "https://x", Secrets: secs}))
	j, _ := json.Marshal(secs)
	out = append(out, string(j))
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", secs[0], "secrets", secs)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", secs[0], "secrets", secs)
	out = append(out, logs.String())
	forms := []string{key, fmt.Sprintf("%x", raw), fmt.Sprintf("%X", raw), fmt.Sprint(raw), fmt.Sprintf("%q", raw), string(raw)}
	for _, o := range out {
		for _, f := range forms {
			if strings.Contains(o, f) {
				t.Errorf("the key shows in %q", o)
			}
		}
	}
	if got := fmt.Sprint(secs[0]); got != "whsec_[redacted]" {
		t.Errorf("Sprint = %q", got)
	}
}
