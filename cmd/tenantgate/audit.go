package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/audit"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// exitCode ends a command with a code after it printed its result: the
// audit's verdicts are answers, not errors.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (c *cli) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit [--database NAME] [--accept DATABASE --reason TEXT]",
		Short: "Check the isolation posture and schema of every database: ok, drift or unsafe (exit 0, 3, 1)",
		Long: `audit compares every tenant database (and each server's template) with the schema its
recorded version must have, computed from the embedded migrations, and checks the application role.

  ok      it matches                                            exit 0
  drift   it differs in ways that do not weaken isolation       exit 3
  unsafe  isolation is weakened (RLS off or not forced, a new   exit 1
          policy, a key without organization_id, the app role
          owning objects or holding SUPERUSER/BYPASSRLS/CREATEDB,
          wider grants, a missing fence trigger)

An unsafe database is quarantined: its tenants get 503 until a later audit finds it safe, or an
operator accepts its findings with --accept DATABASE --reason TEXT.`,
		Args: cobra.NoArgs}
	f := cmd.Flags()
	only := f.String("database", "", "audit only this database")
	accept := f.String("accept", "", "release a quarantined database, accepting its last audit's findings")
	reason := f.String("reason", "", "why the findings are accepted (required with --accept; logged)")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		if (*accept == "") != (*reason == "") {
			return tenancy.Errorf(tenancy.CodeInvalid, "--accept and --reason go together")
		}
		cfg, err := c.config()
		if err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			a := provisioner.NewAudits(provisionerConfig(cfg), store, c.logger(cfg))
			svc, done, err := c.service(cfg, store)
			if err != nil {
				return err
			}
			defer done()
			a.Publish = svc.OrganizationChanged
			if *accept != "" {
				if err := a.Accept(cmd.Context(), *accept, *reason); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "database %s: findings accepted, released from quarantine\n", escapeControl(*accept))
				return nil
			}
			var names []string
			if *only != "" {
				names = append(names, *only)
			}
			out, err := a.AuditFleet(cmd.Context(), names...)
			if err != nil {
				return err
			}
			if *output == "json" {
				if err := writeJSON(c.stdout, out); err != nil {
					return err
				}
			} else if err := auditTable(c.stdout, out); err != nil {
				return err
			}
			return auditExit(out)
		})
	}
	return cmd
}

// auditExit is 1 when anything is unsafe or could not be audited, 3 when
// there is only drift, else nil (0).
func auditExit(out []provisioner.AuditOutcome) error {
	worst := audit.OK
	for _, o := range out {
		if o.Error != "" {
			return exitCode(audit.ExitUnsafe)
		}
		worst = audit.Worst(worst, o.Verdict)
	}
	if code := audit.ExitCode(worst); code != 0 {
		return exitCode(code)
	}
	return nil
}

func auditTable(w io.Writer, out []provisioner.AuditOutcome) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tKIND\tVERDICT\tQUARANTINED\tFINDINGS")
	for _, o := range out {
		verdict := string(o.Verdict)
		if o.Error != "" {
			verdict = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%d\n", escapeControl(o.Database), o.Kind, verdict, o.Quarantined, len(o.Findings))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range out {
		if o.Error != "" {
			fmt.Fprintf(w, "%s: could not be audited: %s\n", escapeControl(o.Database), escapeControl(o.Error))
		}
		for _, f := range o.Findings {
			fmt.Fprintf(w, "%s: %s\n", escapeControl(o.Database), escapeControl(f.String()))
		}
	}
	return nil
}

// auditCell is a database's verdict as tables show it.
func auditCell(verdict string, quarantined bool) string {
	switch {
	case quarantined:
		return verdict + " (quarantined)"
	case verdict == "":
		return "-"
	}
	return verdict
}
