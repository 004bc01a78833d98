package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/provisioner/fanout"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/audit"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

func (c *cli) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Tenant schema across every database: status, fan-out, repair"}
	cmd.AddCommand(c.migrateStatusCmd(), c.migrateTenantsCmd(), c.migrateRepairCmd())
	return cmd
}

// withFanout runs fn with a fan-out runner over the catalog.
func (c *cli) withFanout(ctx context.Context, fn func(*fanout.Runner) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	return c.withCatalog(ctx, func(store *catalog.Store) error {
		r := fanout.New(store, migrations.Tenant, "tenant", cfg.AppRole, c.logger(cfg))
		r.Publish = func(ctx context.Context, orgID string) error {
			return c.publish(ctx, cfg, store, tenancy.ChangeOrganization, orgID)
		}
		return fn(r)
	})
}

func (c *cli) migrateStatusCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "status", Short: "Every database: version, dirty flag, tenants, last result", Args: cobra.NoArgs}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withFanout(cmd.Context(), func(r *fanout.Runner) error {
			st, err := r.Status(cmd.Context())
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, nonNil(st))
			}
			return statusTable(c, st)
		})
	}
	return cmd
}

func statusTable(c *cli, st []fanout.DatabaseStatus) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tKIND\tVERSION\tDIRTY\tSTATE\tTENANTS\tAUDIT\tLAST RESULT")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\t%d\t%s\t%s\n", escapeControl(s.Name), escapeControl(s.Kind), s.Version, s.Dirty,
			escapeControl(s.State), s.Tenants, auditCell(s.Audit, s.Quarantined), escapeControl(s.LastSummary()))
	}
	return tw.Flush()
}

func (c *cli) migrateTenantsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Short: "Migrate the tenant schema over the shared and dedicated databases", Args: cobra.NoArgs}
	f := cmd.Flags()
	var o fanout.Options
	f.IntVar(&o.Concurrency, "concurrency", 4, "databases migrated at once")
	f.StringVar(&o.Tenant, "tenant", "", "only the database of this organization (slug)")
	to := f.Uint("to", 0, "target version (default: the newest)")
	f.BoolVar(&o.DryRun, "dry-run", false, "show what would run, change nothing")
	f.BoolVar(&o.ContinueOnError, "continue-on-error", false, "keep migrating other databases after a failure")
	f.IntVar(&o.MaxFailures, "max-failures", 0, "halt after this many failures (0: no cap)")
	f.IntVar(&o.Canary, "canary", 0, "migrate this many dedicated databases first, alone")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		o.To = *to
		return c.withFanout(cmd.Context(), func(r *fanout.Runner) error {
			rep, err := r.Run(cmd.Context(), o, c.progress(*output))
			if err != nil {
				return err
			}
			if *output == "json" {
				if err := writeJSON(c.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.stdout, "run %s: %d succeeded, %d failed, %d skipped\n", rep.RunID, rep.Succeeded, rep.Failed, rep.Skipped)
				for _, res := range rep.Results {
					if res.Status == "failed" {
						fmt.Fprintf(c.stdout, "  %s failed: %s\n", escapeControl(res.Name), escapeControl(res.Err))
					}
				}
			}
			c.auditMigrated(cmd.Context(), rep, *output == "table")
			if rep.Failed > 0 {
				return fmt.Errorf("%d databases failed; see `tenantgate migrate status`", rep.Failed)
			}
			return nil
		})
	}
	return cmd
}

// progress draws a bar on a terminal and prints nothing otherwise (and
// never with --output json, whose stdout is for the report).
func (c *cli) progress(output string) func(done, total int, last fanout.Result) {
	if output == "json" || c.stdout != os.Stdout || !isatty.IsTerminal(os.Stdout.Fd()) {
		return func(int, int, fanout.Result) {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int, last fanout.Result) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetDescription("migrating"),
				progressbar.OptionShowCount(), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionClearOnFinish())
		}
		bar.Describe(escapeControl(last.Name))
		_ = bar.Set(done)
	}
}

func (c *cli) migrateRepairCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "repair DATABASE --force VERSION",
		Short: "After a person fixed a dirty database: record its version and let its tenants back in", Args: cobra.ExactArgs(1)}
	force := cmd.Flags().String("force", "", "the version the database is at now (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		v, err := strconv.ParseUint(*force, 10, 32)
		if err != nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "--force: required, the version number the database is at")
		}
		return c.withFanout(cmd.Context(), func(r *fanout.Runner) error {
			if err := r.Repair(cmd.Context(), args[0], uint(v)); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "database %s recorded at version %d and back in service\n", escapeControl(args[0]), v)
			return nil
		})
	}
	return cmd
}

// auditMigrated runs the isolation audit on the databases a fan-out
// migrated (an unsafe one is quarantined) and, on a terminal table, says
// what it found. A failure to audit is logged, not the migration's.
func (c *cli) auditMigrated(ctx context.Context, rep fanout.Report, show bool) {
	var names []string
	for _, r := range rep.Results {
		if r.Status == "succeeded" {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	cfg, err := c.config()
	if err != nil {
		return
	}
	log := c.logger(cfg)
	_ = c.withCatalog(ctx, func(store *catalog.Store) error {
		svc, done, err := c.service(cfg, store)
		if err != nil {
			return err
		}
		defer done()
		a := provisioner.NewAudits(provisionerConfig(cfg), store, log)
		a.Publish = svc.OrganizationChanged // one bus for every change, not one per organization
		out, err := a.AuditFleet(ctx, names...)
		if err != nil {
			log.Warn("auditing the migrated databases failed; the provisioner's audit will", "err", err)
			return nil
		}
		for _, o := range out {
			if show && (o.Verdict != audit.OK || o.Error != "") {
				fmt.Fprintf(c.stdout, "  audit %s: %s\n", escapeControl(o.Database), auditCell(string(o.Verdict), o.Quarantined))
			}
		}
		return nil
	})
}
