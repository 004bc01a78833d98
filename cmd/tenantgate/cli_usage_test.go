package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Command-line mistakes exit 2 with the message on stderr (CONTRACT §1),
// whichever command they are made on: none of these reaches a database.
func TestCLIUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{"tenants", "show"}, "accepts 1 arg(s), received 0"},
		{[]string{"tenants", "set-plan", "a"}, "accepts 2 arg(s), received 1"},
		{[]string{"tenants", "set-plan", "a", "pro", "extra"}, "accepts 2 arg(s), received 3"},
		{[]string{"tenants", "list", "extra"}, `unknown command "extra"`},
		{[]string{"migrate", "repair"}, "accepts 1 arg(s), received 0"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"tenants", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"tenants", "list", "-z"}, "unknown shorthand flag: 'z'"},
		{[]string{"tenants", "frobnicate"}, `unknown command "frobnicate" for "tenantgate tenants"`},
		{[]string{"tenants", "shwo", "acme"}, "did you mean show?"},
		{[]string{"servers", "frobnicate"}, `unknown command "frobnicate" for "tenantgate servers"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "tenantgate"`},
		{[]string{"completion", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"servers", "add", "pg2", "--dsn", "postgres://x/y", "--capacity", "lots"}, `invalid argument "lots" for "--capacity"`},
		{[]string{"migrate", "tenants", "--concurrency", "many"}, `invalid argument "many" for "--concurrency"`},
		{[]string{"tenants", "delete", "acme", "--yes=perhaps"}, `invalid argument "perhaps" for "--yes"`},
		{[]string{"tenants", "list", "--output"}, "flag needs an argument: --output"},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := tg(t, tc.args...)
			require.Error(t, err, "%v must be refused", tc.args)
			var msg bytes.Buffer
			require.Equal(t, 2, report(&msg, err), "%v is a usage error: %v", tc.args, err)
			require.Contains(t, msg.String(), tc.want)
			require.Regexp(t, `^tenantgate: .*\n(.*\n)*Run 'tenantgate.* --help' for usage\.\n$`, msg.String())
			require.Empty(t, stdout, "nothing on stdout for a refused command line")
			require.Empty(t, stderr, "report prints the error, once")
		})
	}
}

// Help and the groups without a subcommand are no error; a failure that is
// not the command line's fault stays exit 1.
func TestCLIUsageNotAnError(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {}, {"tenants"}, {"tenants", "--help"}, {"tenants", "show", "--help"}, {"help", "tenants"}} {
		stdout, _, err := tg(t, args...)
		require.NoError(t, err, "%v", args)
		require.Contains(t, stdout, "Usage:", "%v prints help", args)
	}

	require.Equal(t, 1, report(&bytes.Buffer{}, errors.New("connection refused")))
	require.Equal(t, 2, report(&bytes.Buffer{}, tenancy.Errorf(tenancy.CodeInvalid, "--output: must be table or json")))
	require.Equal(t, 1, report(&bytes.Buffer{}, tenancy.Errorf(tenancy.CodeNotFound, "organization %q not found", "x")))
}
