package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

func (c *cli) serversCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "servers", Short: "PostgreSQL servers that hold dedicated databases"}
	cmd.AddCommand(c.serversAddCmd(), c.serversListCmd(), c.serversSweepCmd())
	return cmd
}

func (c *cli) serversAddCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "add NAME --dsn DSN [--capacity N]", Short: "Register a server for new dedicated databases",
		Args: cobra.ExactArgs(1)}
	dsn := cmd.Flags().String("dsn", "", "postgres:// URL of the server, as a role that may create databases (required)")
	capacity := cmd.Flags().Int("capacity", 100, "most dedicated databases it may hold")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *capacity < 0 {
			return tenancy.Errorf(tenancy.CodeInvalid, "--capacity: must be 0 or more")
		}
		if _, err := schema.DatabaseName(*dsn); err != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "--dsn: must be a postgres:// URL naming a database (e.g. /postgres)")
		}
		cfg, err := c.config()
		if err != nil {
			return err
		}
		if err := prepareServer(cmd.Context(), *dsn, cfg.AppRole, cfg.AppRolePassword); err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			srv, err := store.AddServer(cmd.Context(), args[0], *dsn, *capacity)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "server %s registered (capacity %d)\n", escapeControl(srv.Name), srv.Capacity)
			return nil
		})
	}
	return cmd
}

// prepareServer checks a server answers before it is trusted with tenants,
// and creates the application role there: roles belong to a server, and
// its dedicated databases are granted to, and queried as, that role.
func prepareServer(ctx context.Context, dsn, appRole, appRolePassword string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("server %s is not reachable: %w", schema.Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := schema.EnsureAppRole(ctx, conn, appRole, appRolePassword); err != nil {
		return fmt.Errorf("server %s: %w", schema.Redact(dsn), err)
	}
	return nil
}

func (c *cli) serversListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List registered servers with their databases and capacity", Args: cobra.NoArgs}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			servers, err := store.Servers(cmd.Context())
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, nonNil(servers))
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDATABASES\tCAPACITY\tDSN")
			for _, s := range servers {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", escapeControl(s.Name), s.Databases, s.Capacity, escapeControl(schema.Redact(s.DSN)))
			}
			return tw.Flush()
		})
	}
	return cmd
}

func (c *cli) serversSweepCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sweep [--yes]", Short: "List (and with --yes drop) databases with the prefix that the catalog does not know",
		Args: cobra.NoArgs}
	yes := cmd.Flags().Bool("yes", false, "drop the orphans")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := c.config()
		if err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			orphans, err := findOrphans(cmd.Context(), cfg, store)
			if err != nil {
				return err
			}
			if len(orphans) == 0 {
				fmt.Fprintln(c.stdout, "no orphan databases")
				return nil
			}
			for _, o := range orphans {
				if *yes {
					if err := schema.DropDatabase(cmd.Context(), o.server, o.name); err != nil {
						return err
					}
					fmt.Fprintf(c.stdout, "dropped %s on %s\n", escapeControl(o.name), escapeControl(schema.Redact(o.server)))
				} else {
					fmt.Fprintf(c.stdout, "orphan %s on %s\n", escapeControl(o.name), escapeControl(schema.Redact(o.server)))
				}
			}
			if !*yes {
				fmt.Fprintln(c.stdout, "run again with --yes to drop them")
			}
			return nil
		})
	}
	return cmd
}

type orphan struct{ server, name string }

// findOrphans lists, on every server that may hold dedicated databases,
// the databases with the dedicated prefix that the catalog does not know
// (the product's own databases, templates included, excepted).
func findOrphans(ctx context.Context, cfg config.Config, store *catalog.Store) ([]orphan, error) {
	known := map[string]bool{}
	for _, name := range provisionerConfig(cfg).OwnDatabases() {
		known[name] = true // the template, and the catalog and shared databases if they share the prefix
	}
	dbs, err := store.Databases(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range dbs {
		known[d.Name] = true
	}
	servers := []string{cfg.Dedicated.ServerURL}
	registered, err := store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range registered {
		servers = append(servers, s.DSN)
	}
	var out []orphan
	for _, srv := range servers {
		names, err := schema.DatabasesLike(ctx, srv, cfg.Dedicated.DatabasePrefix)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !known[n] && strings.HasPrefix(n, cfg.Dedicated.DatabasePrefix) {
				out = append(out, orphan{server: srv, name: n})
			}
		}
	}
	return out, nil
}
