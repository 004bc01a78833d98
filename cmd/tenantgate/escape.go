package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// escapeControl makes a user-controlled string safe to print on a terminal
// or in a table: C0 control characters, DEL and C1 control characters
// become Go escapes (\x1b, \r, \n, \t, \x00, \x7f, \u0085), as do bytes
// that are not UTF-8 (\xff: a terminal may read a lone 0x9b as a C1 CSI).
// Everything else, ordinary Unicode and backslashes included, is left as
// it is, so names read as typed. Without it a name holding ESC sequences
// or CR LF can clear the screen or forge a row of `tenants list`.
//
// JSON output needs none of this: encoding/json escapes control
// characters itself.
func escapeControl(s string) string {
	i := strings.IndexFunc(s, needsEscape)
	if i < 0 {
		return s // the common case: nothing to do, nothing allocated
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case needsEscape(r):
			// QuoteRune picks \n, \r, \t, \a… where Go has a short escape,
			// else \x1b or \u0085; strip its quotes.
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports a C0 control, DEL, a C1 control or an invalid byte
// (which DecodeRune, and so IndexFunc, see as utf8.RuneError).
func needsEscape(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0x0f]})
}
