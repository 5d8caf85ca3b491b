package bilibili

import (
	"strings"
	"unicode/utf8"
)

// textEnvelopeBytes is the size of `{"content":""}` around the text.
const textEnvelopeBytes = len(`{"content":""}`)

// SplitText cuts text into parts Bilibili accepts as type-1 messages: at
// most MaxTextRunes runes each, whose JSON content is at most
// MaxContentBytes bytes (both limits have answered 21007 when exceeded).
// It cuts on rune boundaries, preferring the last line break, then the
// last space, inside a part. Empty parts are dropped; leading and trailing
// line breaks of parts are trimmed.
func SplitText(text string) []string {
	var parts []string
	rest := text
	for rest != "" {
		cut := fitPrefix(rest)
		if cut < len(rest) {
			if i := strings.LastIndexByte(rest[:cut], '\n'); i > 0 {
				cut = i + 1
			} else if i := strings.LastIndexAny(rest[:cut], " \t"); i > 0 {
				cut = i + 1
			}
		}
		if p := strings.Trim(rest[:cut], "\n"); p != "" {
			parts = append(parts, p)
		}
		rest = rest[cut:]
	}
	return parts
}

// fitPrefix returns the byte length of the longest prefix of s within
// both limits.
func fitPrefix(s string) int {
	runes, size := 0, textEnvelopeBytes
	for i, r := range s {
		n := jsonRuneLen(r)
		if runes+1 > MaxTextRunes || size+n > MaxContentBytes {
			return i
		}
		runes++
		size += n
	}
	return len(s)
}

// jsonRuneLen is how many bytes encoding/json writes for r inside a string
// (with its default HTML escaping).
func jsonRuneLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	case r == utf8.RuneError:
		return 6 // invalid UTF-8 becomes the escape \ufffd
	}
	return utf8.RuneLen(r)
}
