package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts a Standard Webhooks symmetric secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock when Verify is given a zero tolerance; it is the
// Standard Webhooks libraries' default.
const DefaultTolerance = 5 * time.Minute

// minKeyLen is the shortest key Standard Webhooks recommends (24 bytes).
const minKeyLen = 24

// Secret is a decoded signing key. It never prints its key: String,
// GoString, Format (every fmt verb) and LogValue all show "whsec_[redacted]",
// and encoding/json sees no exported field.
type Secret struct {
	key []byte
}

const redactedSecret = SecretPrefix + "[redacted]"

// String never shows the key.
func (Secret) String() string { return redactedSecret }

// GoString never shows the key.
func (Secret) GoString() string { return redactedSecret }

// Format never shows the key, whatever the verb (%d or %x included).
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redactedSecret) }

// LogValue never shows the key.
func (Secret) LogValue() slog.Value { return slog.StringValue(redactedSecret) }

// parseSecret decodes one secret: "whsec_" followed by the base64 (standard
// alphabet, padded) encoding of the key. The prefix is optional and the rest
// is base64-decoded either way, as the Standard Webhooks libraries do, so a
// receiver handed the same string verifies what bilibridge signs. A secret
// that is not base64 is an error rather than being used as raw bytes: raw
// use would silently disagree with those libraries.
func parseSecret(s string) (Secret, error) {
	b64 := strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// The error of DecodeString names an offset only, never the input.
		return Secret{}, fmt.Errorf("webhook: secret is not %s followed by base64 (%v); generate one with: echo %s$(openssl rand -base64 32)", SecretPrefix, err, SecretPrefix)
	}
	if len(key) == 0 {
		return Secret{}, fmt.Errorf("webhook: empty secret")
	}
	return Secret{key: key}, nil
}

// ParseSecrets parses WEBHOOK_SECRET: secrets separated by white space.
// Every secret signs each request, which is how a key is rotated: add the
// new one, update the receivers, remove the old one. An empty string is no
// secret (requests go unsigned).
func ParseSecrets(s string) ([]Secret, error) {
	var out []Secret
	for i, f := range strings.Fields(s) {
		sec, err := parseSecret(f)
		if err != nil {
			return nil, fmt.Errorf("webhook: secret %d of WEBHOOK_SECRET: %w", i+1, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// Sign returns the Standard Webhooks v1 signature "v1,<base64>" of a
// request: HMAC-SHA256, keyed with the secret, of "id.timestamp.body" with
// the timestamp in unix seconds.
func Sign(secret Secret, id string, ts time.Time, body []byte) string {
	mac := signature(secret.key, id, strconv.FormatInt(ts.Unix(), 10), body)
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(len(mac)))
	copy(out, "v1,")
	base64.StdEncoding.Encode(out[3:], mac)
	return string(out)
}

func signature(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	io.WriteString(h, id)
	h.Write([]byte{'.'})
	io.WriteString(h, ts)
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verification errors; Verify wraps one of them.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or
	// webhook-signature is missing.
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	// ErrTimestamp: the timestamp is malformed or outside the tolerance.
	ErrTimestamp = errors.New("webhook: bad timestamp")
	// ErrNoMatch: no v1 signature matches any secret.
	ErrNoMatch = errors.New("webhook: no matching signature")
)

// Verify checks a received request as a Standard Webhooks receiver does:
// the webhook-timestamp must be within tolerance of now (either way) and
// one of the v1 signatures in webhook-signature must match one of the
// secrets, compared in constant time. body must be the exact bytes
// received. A zero tolerance means DefaultTolerance; a negative one skips
// the timestamp check (for manual replays of stored requests). Other
// signature versions (v1a) are ignored.
func Verify(secrets []Secret, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := header.Get("webhook-id")
	tsStr := header.Get("webhook-timestamp")
	sigs := header.Get("webhook-signature")
	if id == "" || tsStr == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrTimestamp, tsStr)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if tolerance > 0 {
		skew := now.Sub(time.Unix(ts, 0))
		if skew > tolerance || skew < -tolerance {
			return fmt.Errorf("%w: %s away from now, tolerance %s", ErrTimestamp, skew.Round(time.Second), tolerance)
		}
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrNoMatch)
	}
	macs := make([][]byte, len(secrets))
	for i, s := range secrets {
		macs[i] = signature(s.key, id, tsStr, body)
	}
	for _, f := range strings.Fields(sigs) {
		b64, ok := strings.CutPrefix(f, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, m := range macs {
			if hmac.Equal(got, m) {
				return nil
			}
		}
	}
	return ErrNoMatch
}
