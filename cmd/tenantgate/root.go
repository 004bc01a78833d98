package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/tenancy"
)

// cli carries what every command shares: viper with its flags bound, and
// the output streams.
type cli struct {
	v              *viper.Viper
	configFile     string
	stdout, stderr io.Writer
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &cli{v: config.New(), stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "tenantgate",
		Short:         "Multi-tenant gateway and control plane: shared and dedicated Postgres per tenant",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentPreRunE = c.bindFlags
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&c.configFile, "config", "", "config file (default ./tenantgate.yaml if present)")
	c.flag(pf, "database_url", "catalog database URL")
	c.flag(pf, "log_level", "log level: debug, info, warn, error")
	root.AddCommand(c.initCmd(), c.serveCmd(), c.devCmd(), c.tenantsCmd(), c.provisionerCmd(), c.serversCmd(), c.migrateCmd(),
		c.auditCmd())
	usageErrors(root)
	return root.ExecuteContext(ctx)
}

// usageError is a command line cobra refused (unknown command or flag,
// wrong argument count, bad flag value, missing required flag): report
// exits 2 for it, as for any request refused as invalid.
type usageError struct {
	err     error
	command string // the command's path, for the --help hint
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// asUsageError wraps err (nil stays nil) as a usageError of cmd.
func asUsageError(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err, command: cmd.CommandPath()}
}

// usageErrors makes every command of the tree, present and future, report
// its command-line mistakes as usageError, so no command file has to:
//   - flag parsing errors (unknown flag, bad value) go through the
//     FlagErrorFunc, which subcommands inherit from the root;
//   - argument validators (cobra.ExactArgs…) are wrapped, and check the
//     required flags and flag groups too, which cobra would otherwise
//     check later and report as plain errors;
//   - a group (tenants, servers, migrate, the root) gets a RunE that
//     refuses an unknown subcommand: cobra itself would only print the
//     group's help and exit 0 for `tenants frobnicate`.
func usageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(asUsageError)
	// cobra adds these when it executes; add them now so they are walked.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
			cmd.Args = cobra.ArbitraryArgs // RunE below decides; nil would let cobra's legacy check answer first
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return cmd.Help()
				}
				msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
				if cmd.SuggestionsMinimumDistance <= 0 {
					cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which it sets only on its own path
				}
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
				}
				return asUsageError(cmd, errors.New(msg))
			}
		}
		validate := cmd.Args
		if validate == nil {
			validate = cobra.ArbitraryArgs
		}
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := validate(cmd, args); err != nil {
				return asUsageError(cmd, err)
			}
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return asUsageError(cmd, err)
			}
			return asUsageError(cmd, cmd.ValidateFlagGroups())
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

const configKey = "tenantgate/config-key"

// flag defines a string flag named after a config key (dots and
// underscores become dashes). bindFlags binds it when its command runs, so
// flags beat environment, file and defaults.
func (c *cli) flag(fs *pflag.FlagSet, key, usage string) {
	name := strings.NewReplacer(".", "-", "_", "-").Replace(key)
	fs.String(name, "", usage+" ("+key+")")
	_ = fs.SetAnnotation(name, configKey, []string{key})
}

// bindFlags binds the running command's flags to their keys. Binding at
// definition would not do: several commands define --http-addr, and the
// last binding of a key would win for all of them.
func (c *cli) bindFlags(cmd *cobra.Command, _ []string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if keys := f.Annotations[configKey]; len(keys) == 1 && err == nil {
			err = c.v.BindPFlag(keys[0], f)
		}
	})
	return err
}

// config loads and validates the configuration.
func (c *cli) config() (config.Config, error) {
	cfg, err := config.Load(c.v, c.configFile)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func (c *cli) logger(cfg config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: level}))
}

// report prints err for a person and returns the exit code: 2 for a usage
// error or a request the command refused as invalid, 1 for anything that
// went wrong while doing it. Messages are escaped (escapeControl): they
// quote names and arguments, which may hold control characters.
func report(w io.Writer, err error) int {
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec) // the command has said all there is to say
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(w, "tenantgate: %s\nRun '%s --help' for usage.\n", escapeControl(ue.Error()), escapeControl(ue.command))
		return 2
	}
	var te *tenancy.Error
	if errors.As(err, &te) && te.Code != tenancy.CodeInternal {
		fmt.Fprintf(w, "tenantgate: %s\n", escapeControl(te.Message))
		if te.Code == tenancy.CodeInvalid {
			return 2
		}
		return 1
	}
	for _, line := range messageLines(err) {
		fmt.Fprintf(w, "tenantgate: %s\n", escapeControl(line))
	}
	return 1
}

// messageLines splits an errors.Join of several errors (Validate's, say)
// into one line each, so that escaping keeps them on lines of their own
// while a newline inside any one of them is still escaped.
func messageLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var lines, parts []string
		for _, e := range j.Unwrap() {
			if e != nil {
				parts = append(parts, e.Error())
				lines = append(lines, messageLines(e)...)
			}
		}
		// Only a join's message is its parts one a line; another error
		// wrapping several (fmt.Errorf with two %w) has words of its own.
		if strings.Join(parts, "\n") == err.Error() {
			return lines
		}
	}
	return []string{err.Error()}
}
