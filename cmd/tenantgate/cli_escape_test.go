package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestCLIEscapeControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Acme Corp", "Acme Corp"},
		{"Ünïcödé 名前 🚀 émoji", "Ünïcödé 名前 🚀 émoji"},
		{`back\slash`, `back\slash`},
		{"\x1b[2J\r\nevil\tfree", `\x1b[2J\r\nevil\tfree`},
		{"nul\x00bel\x07bs\x08vt\x0bff\x0c", `nul\x00bel\abs\bvt\vff\f`},
		{"del\x7f", `del\x7f`},
		{"c1 \u0085 \u009b31m", `c1 \u0085 \u009b31m`},
		{"bad \xff\x9b utf8", `bad \xff\x9b utf8`},
		{"\uFFFD stays", "\uFFFD stays"},
	} {
		require.Equal(t, tc.want, escapeControl(tc.in), "%q", tc.in)
	}
}

// The messages report prints quote names and arguments: escaped, while the
// lines of a joined error (Validate's) stay lines.
func TestCLIReportEscapes(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := report(&out, tenancy.Errorf(tenancy.CodeInvalid, "organization %s has its own database", "x\x1b[2J\rok"))
	require.Equal(t, 2, code)
	require.Equal(t, "tenantgate: organization x\\x1b[2J\\rok has its own database\n", out.String())

	out.Reset()
	report(&out, errors.Join(errors.New("first: bad \x07"), errors.New("second\nforged")))
	require.Equal(t, "tenantgate: first: bad \\a\ntenantgate: second\\nforged\n", out.String())

	out.Reset()
	_, _, err := tg(t, "tenants", "show", "a", "b\x1b[31m")
	require.Equal(t, 2, report(&out, err))
	require.NotContains(t, out.String(), "\x1b")
}

// A name with terminal escapes and CR LF, however it got into the catalog,
// is one escaped row of `tenants list` and `tenants show`, and unchanged
// in JSON.
func TestCLITenantsListEscapesNames(t *testing.T) {
	e := env(t)
	mustTG(t, "init")
	mustTG(t, "tenants", "create", "--slug", "evil", "--name", "Evil", "--plan", "free")
	mustTG(t, "tenants", "create", "--slug", "good", "--name", "Good", "--plan", "free")
	const name = "\x1b[2J\r\nevil\tfree"
	db := tenancytest.Connect(t, e.CatalogURL)
	_, err := db.Exec(context.Background(), `UPDATE organizations SET name = $1 WHERE slug = 'evil'`, name)
	require.NoError(t, err)

	out := mustTG(t, "tenants", "list")
	require.NotContains(t, out, "\x1b")
	require.NotContains(t, out, "\r")
	require.NotContains(t, out, "\t")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 3, "a header and one row per organization:\n%s", out)
	require.True(t, strings.HasPrefix(lines[1], "evil "), lines[1])
	require.Contains(t, lines[1], `\x1b[2J\r\nevil\tfree`)
	require.Contains(t, lines[1], "free", "the row goes on with the plan")
	require.True(t, strings.HasPrefix(lines[2], "good "), lines[2])

	out = mustTG(t, "tenants", "show", "evil")
	require.Len(t, strings.Split(strings.TrimSuffix(out, "\n"), "\n"), 2, out)
	require.Contains(t, out, `\x1b[2J\r\nevil\tfree`)

	var orgs []struct{ Slug, Name string }
	require.NoError(t, json.Unmarshal([]byte(mustTG(t, "tenants", "list", "--output", "json")), &orgs))
	require.Equal(t, name, orgs[0].Name, "JSON carries the name as it is, escaped by encoding/json")
}
