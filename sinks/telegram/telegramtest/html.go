package telegramtest

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// htmlTags are the tags Telegram's HTML parse mode accepts.
var htmlTags = map[string]bool{"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true,
	"s": true, "strike": true, "del": true, "span": true, "tg-spoiler": true, "a": true, "code": true,
	"pre": true, "blockquote": true, "tg-emoji": true}

// visibleLen parses text in parse mode HTML the way Telegram does (strict:
// only the supported tags, properly nested; '<', '>' and '&' only as
// entities) and returns the length of the visible text in UTF-16 code
// units, which is how Telegram counts its limits.
func visibleLen(text, mode string) (int, error) {
	if !strings.EqualFold(mode, "HTML") {
		return len(utf16.Encode([]rune(text))), nil
	}
	var visible strings.Builder
	var stack []string
	for i := 0; i < len(text); {
		switch text[i] {
		case '<':
			end := strings.IndexByte(text[i:], '>')
			if end < 0 {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unclosed start tag at byte offset %d", i))
			}
			tag := text[i+1 : i+end]
			closing := strings.HasPrefix(tag, "/")
			name := strings.TrimPrefix(tag, "/")
			if sp := strings.IndexAny(name, " \t\n"); sp >= 0 {
				if closing {
					return 0, badRequest("can't parse entities: unexpected end tag")
				}
				if err := checkAttrs(name[:sp], name[sp+1:]); err != nil {
					return 0, err
				}
				name = name[:sp]
			}
			if !htmlTags[name] {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unsupported start tag \"%s\" at byte offset %d", name, i))
			}
			if closing {
				if len(stack) == 0 || stack[len(stack)-1] != name {
					return 0, badRequest(fmt.Sprintf("can't parse entities: can't find end tag corresponding to start tag \"%s\"", name))
				}
				stack = stack[:len(stack)-1]
			} else {
				stack = append(stack, name)
			}
			i += end + 1
		case '>':
			return 0, badRequest(fmt.Sprintf("can't parse entities: character '>' is reserved at byte offset %d", i))
		case '&':
			end := strings.IndexByte(text[i:], ';')
			if end < 0 {
				return 0, badRequest(fmt.Sprintf("can't parse entities: unescaped '&' at byte offset %d", i))
			}
			ent := text[i+1 : i+end]
			switch {
			case ent == "lt", ent == "gt", ent == "amp", ent == "quot":
				visible.WriteByte('x')
			case strings.HasPrefix(ent, "#") && len(ent) > 1 && isDigits(ent[1:]):
				visible.WriteByte('x')
			default:
				return 0, badRequest(fmt.Sprintf("can't parse entities: unsupported entity \"&%s;\" at byte offset %d", ent, i))
			}
			i += end + 1
		default:
			visible.WriteByte(text[i])
			i++
		}
	}
	if len(stack) > 0 {
		return 0, badRequest(fmt.Sprintf("can't parse entities: can't find end tag corresponding to start tag \"%s\"", stack[len(stack)-1]))
	}
	return len(utf16.Encode([]rune(visible.String()))), nil
}

func checkAttrs(tag, attrs string) error {
	if tag != "a" && tag != "span" && tag != "code" && tag != "tg-emoji" && tag != "blockquote" {
		return badRequest("can't parse entities: unexpected attribute")
	}
	if tag == "a" {
		v, ok := strings.CutPrefix(strings.TrimSpace(attrs), "href=\"")
		if !ok || !strings.HasSuffix(v, "\"") || strings.ContainsAny(strings.TrimSuffix(v, "\""), "\"<>") {
			return badRequest("can't parse entities: bad href attribute")
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
