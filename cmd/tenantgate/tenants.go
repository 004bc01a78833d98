package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/changes"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

func (c *cli) tenantsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tenants", Short: "List, show and create organizations"}
	cmd.AddCommand(c.tenantsListCmd(), c.tenantsShowCmd(), c.tenantsCreateCmd(),
		c.tenantsStatusCmd("approve", "Let a waitlisted organization in", tenancy.StatusActive, tenancy.StatusPending),
		c.tenantsStatusCmd("suspend", "Suspend an organization: its requests get 403 organization_suspended",
			tenancy.StatusSuspended, tenancy.StatusActive, tenancy.StatusPending),
		c.tenantsStatusCmd("resume", "Lift a suspension", tenancy.StatusActive, tenancy.StatusSuspended),
		c.tenantsSetUsageCmd(), c.tenantsSetLimitsCmd(), c.tenantsMoveCmd(), c.tenantsSetPlanCmd(), c.tenantsDeleteCmd(),
		c.tenantsExportCmd(), c.tenantsImportCmd(), c.tenantsRestoreCmd(),
		c.tenantsUsageCmd(), c.tenantsAdviseCmd())
	return cmd
}

func (c *cli) tenantsSetUsageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "set-usage SLUG", Short: "Set an organization's agent-minutes for the current billing period",
		Args: cobra.ExactArgs(1)}
	minutes := cmd.Flags().Int64("agent-minutes", -1, "agent-minutes used this period (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *minutes < 0 {
			return tenancy.Errorf(tenancy.CodeInvalid, "--agent-minutes: required, 0 or more")
		}
		return c.changeOrganization(cmd, func(store *catalog.Store) (tenancy.Organization, error) {
			return store.SetUsage(cmd.Context(), args[0], *minutes)
		}, fmt.Sprintf("agent-minutes this period set to %d", *minutes))
	}
	return cmd
}

func (c *cli) tenantsSetLimitsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "set-limits SLUG", Short: "Override an organization's plan limits (0 returns a limit to the plan's)",
		Args: cobra.ExactArgs(1)}
	f := cmd.Flags()
	agents := f.Int("max-agents", -1, "most live agents")
	minutes := f.Int("max-agent-minutes", -1, "agent-minutes per billing period")
	rps := f.Int("rps", -1, "requests per second")
	tokens := f.Int64("max-tokens", -1, "model tokens per billing period")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		set := func(name string, v int) (*int, error) {
			if !cmd.Flags().Changed(name) {
				return nil, nil
			}
			if v < 0 {
				return nil, tenancy.Errorf(tenancy.CodeInvalid, "--%s: must be 0 or more", name)
			}
			return &v, nil
		}
		a, err1 := set("max-agents", *agents)
		m, err2 := set("max-agent-minutes", *minutes)
		r, err3 := set("rps", *rps)
		var tk *int64
		var err4 error
		if cmd.Flags().Changed("max-tokens") {
			if tk = tokens; *tokens < 0 {
				err4 = tenancy.Errorf(tenancy.CodeInvalid, "--max-tokens: must be 0 or more")
			}
		}
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return err
		}
		if a == nil && m == nil && r == nil && tk == nil {
			return tenancy.Errorf(tenancy.CodeInvalid, "give at least one of --max-agents, --max-agent-minutes, --rps, --max-tokens")
		}
		return c.changeOrganization(cmd, func(store *catalog.Store) (tenancy.Organization, error) {
			return store.SetLimits(cmd.Context(), args[0], catalog.LimitChanges{MaxAgents: a, MaxAgentMinutes: m, RPS: r, MaxTokens: tk})
		}, "limits updated")
	}
	return cmd
}

// changeOrganization applies change to an organization in the catalog and
// tells every gateway replica to re-read it.
func (c *cli) changeOrganization(cmd *cobra.Command, change func(*catalog.Store) (tenancy.Organization, error), done string) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
		org, err := change(store)
		if err != nil {
			return err
		}
		if err := c.publish(cmd.Context(), cfg, store, tenancy.ChangeOrganization, org.ID); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "organization %s: %s\n", org.Slug, done)
		return nil
	})
}

// tenantsStatusCmd moves an organization to status from one of the from
// states, and tells every gateway replica at once.
func (c *cli) tenantsStatusCmd(name, short string, status tenancy.Status, from ...tenancy.Status) *cobra.Command {
	cmd := &cobra.Command{Use: name + " SLUG", Short: short, Args: cobra.ExactArgs(1)}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return c.changeOrganization(cmd, func(store *catalog.Store) (tenancy.Organization, error) {
			return store.SetOrganizationStatus(cmd.Context(), args[0], status, from...)
		}, "now "+string(status))
	}
	return cmd
}

// publish records a change on the feed every gateway follows.
func (c *cli) publish(ctx context.Context, cfg config.Config, store *catalog.Store, kind, subject string) error {
	log := c.logger(cfg)
	bus, client, err := openBus(cfg, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	if client != nil {
		defer client.Close()
	}
	return changes.New(store, bus, log).Publish(ctx, kind, subject, time.Time{})
}

// withCatalog runs fn with a catalog store, closed afterwards.
func (c *cli) withCatalog(ctx context.Context, fn func(*catalog.Store) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	pool, store, err := openCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(store)
}

func outputFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("output", "table", "output format: table or json")
}

func checkOutput(format string) error {
	if format != "table" && format != "json" {
		return tenancy.Errorf(tenancy.CodeInvalid, "--output: must be table or json (got %q)", format)
	}
	return nil
}

func (c *cli) tenantsListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List organizations with plan, status and placement", Args: cobra.NoArgs}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			orgs, err := store.Organizations(cmd.Context())
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, nonNil(orgs))
			}
			return tenantTable(c.stdout, orgs)
		})
	}
	return cmd
}

func (c *cli) tenantsShowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "show SLUG", Short: "Show one organization", Args: cobra.ExactArgs(1)}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			org, err := store.OrganizationDetailBySlug(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, org)
			}
			return tenantTable(c.stdout, []catalog.OrganizationDetail{org})
		})
	}
	return cmd
}

func (c *cli) tenantsCreateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "create", Short: "Create an organization; enterprise gets a dedicated database", Args: cobra.NoArgs}
	f := cmd.Flags()
	slug := f.String("slug", "", "URL name of the organization (required)")
	name := f.String("name", "", "display name (required)")
	plan := f.String("plan", "free", "free, starter, pro or enterprise")
	email := f.String("owner-email", "", "email of the owner user to create")
	password := f.String("owner-password", "", "password of the owner user (at least 10 characters)")
	wait := f.Bool("wait", false, "wait until a dedicated database is provisioned")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req, err := createRequest(*slug, *name, *plan, *email, *password)
		if err != nil {
			return err
		}
		if err := checkOutput(*output); err != nil {
			return err
		}
		cfg, err := c.config()
		if err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			p := provisioner.New(provisionerConfig(cfg), store, c.logger(cfg))
			defer p.Close()
			org, job, err := p.EnqueueOrganization(cmd.Context(), req)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, map[string]any{"organization": org, "jobId": nilIfEmpty(job)})
			}
			fmt.Fprintf(c.stdout, "created organization %s (%s), plan %s, placement %s\n", org.Slug, org.ID, org.Plan, org.Placement)
			return c.afterEnqueue(cmd.Context(), store, job, *wait)
		})
	}
	return cmd
}

// afterEnqueue follows a job with --wait, or says how to.
func (c *cli) afterEnqueue(ctx context.Context, store *catalog.Store, job string, wait bool) error {
	switch {
	case job == "":
		return nil
	case wait:
		return followJob(ctx, store, job, c.stdout)
	}
	fmt.Fprintf(c.stdout, "job %s queued; a provisioner runs it (follow it at /admin/jobs/%s, or use --wait)\n", job, job)
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *cli) tenantsMoveCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "move SLUG --to shared|dedicated", Short: "Move an organization's data between the shared database and its own",
		Args: cobra.ExactArgs(1)}
	to := cmd.Flags().String("to", "", "shared or dedicated (required)")
	wait := cmd.Flags().Bool("wait", false, "wait until the move ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *to != tenancy.KindShared && *to != tenancy.KindDedicated {
			return tenancy.Errorf(tenancy.CodeInvalid, "--to: must be shared or dedicated")
		}
		return c.enqueueMove(cmd, args[0], *to, *wait)
	}
	return cmd
}

func (c *cli) tenantsSetPlanCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "set-plan SLUG PLAN", Short: "Change an organization's plan; crossing the enterprise line moves its data",
		Args: cobra.ExactArgs(2)}
	wait := cmd.Flags().Bool("wait", false, "wait until a resulting move ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		plan, err := tenancy.ParsePlan(args[1])
		if err != nil {
			return err
		}
		cfg, err := c.config()
		if err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			org, err := store.OrganizationBySlug(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			svc, done, err := c.service(cfg, store)
			if err != nil {
				return err
			}
			defer done()
			job, err := svc.ChangePlan(cmd.Context(), org.ID, plan)
			if err != nil {
				return err
			}
			if job == "" {
				fmt.Fprintf(c.stdout, "organization %s: plan %s\n", org.Slug, plan)
				return nil
			}
			fmt.Fprintf(c.stdout, "moving organization %s to %s for plan %s\n", org.Slug, placementOf(plan), plan)
			return c.afterEnqueue(cmd.Context(), store, job, *wait)
		})
	}
	return cmd
}

// service is the application layer over store, for operations that need
// only the catalog and the change feed; done closes the feed's bus.
func (c *cli) service(cfg config.Config, store *catalog.Store) (*service.Service, func(), error) {
	log := c.logger(cfg)
	bus, client, err := openBus(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	done := func() {
		bus.Close()
		if client != nil {
			client.Close()
		}
	}
	return service.New(service.Deps{Catalog: store, Changes: changes.New(store, bus, log), Log: log}), done, nil
}

func placementOf(plan tenancy.Plan) string {
	if plan.Dedicated() {
		return tenancy.KindDedicated
	}
	return tenancy.KindShared
}

func (c *cli) enqueueMove(cmd *cobra.Command, slug, to string, wait bool) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
		org, err := store.OrganizationBySlug(cmd.Context(), slug)
		if err != nil {
			return err
		}
		svc, done, err := c.service(cfg, store)
		if err != nil {
			return err
		}
		defer done()
		job, err := svc.MoveOrganization(cmd.Context(), org.ID, to)
		if err != nil {
			return err
		}
		if org.Placement == to {
			// A move job to where the tenant is finishes what a stopped
			// move left: it abandons one that never switched, or clears
			// the old copy of one that did. With nothing left it is a
			// no-op.
			fmt.Fprintf(c.stdout, "organization %s is already %s; finishing any move it was in\n", slug, to)
		} else {
			fmt.Fprintf(c.stdout, "moving organization %s to %s\n", slug, to)
		}
		return c.afterEnqueue(cmd.Context(), store, job, wait)
	})
}

func (c *cli) tenantsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "delete SLUG [--yes]", Short: "Delete an organization and its data; a dedicated database only with --yes",
		Args: cobra.ExactArgs(1)}
	yes := cmd.Flags().Bool("yes", false, "really drop a dedicated database")
	wait := cmd.Flags().Bool("wait", false, "wait until the deletion ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := c.config()
		if err != nil {
			return err
		}
		return c.withCatalog(cmd.Context(), func(store *catalog.Store) error {
			svc, done, err := c.service(cfg, store)
			if err != nil {
				return err
			}
			defer done()
			job, err := svc.DeleteOrganization(cmd.Context(), args[0], *yes)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "deleting organization %s\n", args[0])
			return c.afterEnqueue(cmd.Context(), store, job, *wait)
		})
	}
	return cmd
}

// createRequest checks the flags of `tenants create` before anything is
// created.
func createRequest(slug, name, plan, email, password string) (provisioner.CreateOrganization, error) {
	req := provisioner.CreateOrganization{Slug: slug, Name: name, OwnerEmail: email}
	if slug == "" || name == "" {
		return req, tenancy.Errorf(tenancy.CodeInvalid, "--slug and --name are required")
	}
	if err := tenancy.ValidateSlug(slug); err != nil {
		return req, err
	}
	if err := tenancy.CheckName("--name", name, true, 200); err != nil {
		return req, err
	}
	p, err := tenancy.ParsePlan(plan)
	if err != nil {
		return req, err
	}
	req.Plan = p
	if (email == "") != (password == "") {
		return req, tenancy.Errorf(tenancy.CodeInvalid, "--owner-email and --owner-password go together")
	}
	if email == "" {
		return req, nil
	}
	if len(password) < identity.MinPasswordLength {
		return req, tenancy.Errorf(tenancy.CodeInvalid, "--owner-password: must be at least %d characters", identity.MinPasswordLength)
	}
	req.OwnerPasswordHash, err = identity.HashPassword(password, identity.DefaultPasswordParams)
	return req, err
}

// tenantTable prints organizations one a row. Every string is escaped
// (escapeControl): a name is whatever its owner typed, and a tab, CR or LF
// in it would otherwise shift columns or forge a row.
func tenantTable(w io.Writer, orgs []catalog.OrganizationDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tNAME\tPLAN\tSTATUS\tPLACEMENT\tDATABASE\tAUDIT\tUSERS\tAGENT-MINUTES\tID")
	for _, o := range orgs {
		placement := o.Placement
		if o.PlacementState != tenancy.PlacementReady {
			placement += " (" + o.PlacementState + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n",
			escapeControl(o.Slug), escapeControl(o.Name), escapeControl(string(o.Plan)), escapeControl(string(o.Status)),
			escapeControl(placement), escapeControl(o.Database), auditCell(o.Audit, o.Quarantined), o.Users, o.AgentMinutesUsed, escapeControl(o.ID))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
