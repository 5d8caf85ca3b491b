// Package kvkey builds NATS KV keys from parts that may hold any text: a
// command_id an API client chose, an event id, a sink name.
//
// A KV key is dot-separated tokens of A-Z, a-z, 0-9, '-', '_', '=' and
// '/'. A part made only of the first six (and not too long) is used as it
// is, so keys stay readable in `nats kv ls`; any other part becomes
// "h=<SHA-256 hex>", which no plain part can equal, so two different
// parts never share a key.
package kvkey

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxPlain is the longest part kept as it is.
const MaxPlain = 128

// Token returns part as one key token.
func Token(part string) string {
	plain := part != "" && len(part) <= MaxPlain
	for i := 0; plain && i < len(part); i++ {
		c := part[i]
		plain = c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if plain {
		return part
	}
	sum := sha256.Sum256([]byte(part))
	return "h=" + hex.EncodeToString(sum[:])
}

// Join makes a key of a fixed prefix (already a valid key, such as
// "cmd" or "tg.msg") and parts, each made a token.
func Join(prefix string, parts ...string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, p := range parts {
		b.WriteByte('.')
		b.WriteString(Token(p))
	}
	return b.String()
}
