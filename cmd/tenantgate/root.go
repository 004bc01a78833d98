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
	root.AddCommand(c.initCmd(), c.serveCmd(), c.devCmd(), c.tenantsCmd(), c.provisionerCmd(), c.serversCmd(), c.migrateCmd())
	return root.ExecuteContext(ctx)
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

// report prints err for a person and returns the exit code: 2 for a request
// the command refused, 1 for anything that went wrong while doing it.
func report(w io.Writer, err error) int {
	var te *tenancy.Error
	if errors.As(err, &te) && te.Code != tenancy.CodeInternal {
		fmt.Fprintf(w, "tenantgate: %s\n", te.Message)
		if te.Code == tenancy.CodeInvalid {
			return 2
		}
		return 1
	}
	fmt.Fprintf(w, "tenantgate: %v\n", err)
	return 1
}
