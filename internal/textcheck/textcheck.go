// Package textcheck holds the character rules every package of the module
// applies to what people and detectors hand it: one rule for identifiers
// and names, one for free text. Both checks are allocation-free.
package textcheck

import (
	"unicode"
	"unicode/utf8"
)

// BadIdentRune reports a rune an identifier or a name may not hold: a
// control character (Cc), a line or paragraph separator, or a
// bidirectional embedding, override or isolate (which would let a name
// display as another).
func BadIdentRune(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' ||
		'\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
}

// Ident reports whether s is valid UTF-8 without a rune BadIdentRune
// refuses.
func Ident(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || BadIdentRune(r) {
			return false
		}
		i += n
	}
	return true
}

// Text reports whether s is valid UTF-8 whose only control characters are
// tab and newline.
func Text(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < ' ' && c != '\t' && c != '\n' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unicode.IsControl(r) {
			return false
		}
		i += n
	}
	return true
}
