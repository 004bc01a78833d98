package tenancy

import "testing"

func TestCheckNameAndText(t *testing.T) {
	for _, c := range []struct {
		value           string
		name, multiline bool // accepted as a name, as long text
	}{
		{"Acme Corp", true, true},
		{"株式会社 ünïcode", true, true},
		{"line\nbreak", false, true},
		{"tab\there", false, true},
		{"cr\rlf", false, true},
		{"esc\x1b[2J", false, false},
		{"nul\x00", false, false},
		{"bell\a", false, false},
		{"del\x7f", false, false},
		{"c1\u0085next", false, false},
		{"csi\u009b", false, false},
		{"sep\u2028", false, false},
		{"bad\xffutf8", false, false},
	} {
		if err := CheckName("f", c.value, true, 100); (err == nil) != c.name {
			t.Errorf("CheckName(%q) = %v, want accepted %v", c.value, err, c.name)
		}
		if err := CheckText("f", c.value, true, 100); (err == nil) != c.multiline {
			t.Errorf("CheckText(%q) = %v, want accepted %v", c.value, err, c.multiline)
		}
	}
	if CheckName("f", " ", true, 10) == nil || CheckName("f", "", false, 10) != nil || CheckName("f", "toolong", false, 3) == nil {
		t.Error("required and length rules")
	}
}
