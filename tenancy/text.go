package tenancy

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckName checks a client-supplied name or one-line display string:
// valid UTF-8, no control character at all (C0, DEL, C1: they forge rows
// and move cursors when printed), within max runes, present when required.
func CheckName(field, value string, required bool, max int) error {
	return checkText(field, value, required, max, false)
}

// CheckText checks a client-supplied long text (a description, a message's
// content): like CheckName, except that tabs and line breaks are text.
func CheckText(field, value string, required bool, max int) error {
	return checkText(field, value, required, max, true)
}

func checkText(field, value string, required bool, max int, multiline bool) error {
	switch {
	case required && strings.TrimSpace(value) == "":
		return Errorf(CodeInvalid, "%s: is required", field)
	case !utf8.ValidString(value):
		return Errorf(CodeInvalid, "%s: must be valid UTF-8", field)
	case strings.IndexFunc(value, func(r rune) bool { return isControl(r, multiline) }) >= 0:
		return Errorf(CodeInvalid, "%s: must not contain control characters", field)
	case utf8.RuneCountInString(value) > max:
		return Errorf(CodeInvalid, "%s: must be at most %d characters", field, max)
	}
	return nil
}

func isControl(r rune, multiline bool) bool {
	if multiline && (r == '\t' || r == '\n' || r == '\r') {
		return false
	}
	// unicode.IsControl is C0, DEL and C1; the line and paragraph
	// separators end lines in terminals and logs too.
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}
