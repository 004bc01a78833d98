package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// withUsage runs fn with the catalog and the metering store over it,
// closed afterwards.
func (c *cli) withUsage(ctx context.Context, fn func(*catalog.Store, *metering.Store) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	pool, store, err := openCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(store, metering.NewStore(pool, nil))
}

// parseSince reads a period flag: a number of days ("7d"), which
// time.ParseDuration does not know, or any positive Go duration ("36h").
// It is config's parseDays, which config does not export.
func parseSince(flag, s string) (time.Duration, error) {
	bad := tenancy.Errorf(tenancy.CodeInvalid, "%s: must be a number of days such as 7d, or a duration such as 36h (got %q)", flag, s)
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// defaultTop is how many tenants `tenants usage` lists without SLUG or
// --top.
const defaultTop = 10

// usageReport is `tenants usage SLUG --output json`.
type usageReport struct {
	Since time.Time `json:"since"`
	metering.Cost
}

// topReport is `tenants usage --top N --output json`.
type topReport struct {
	Since   time.Time        `json:"since"`
	By      metering.Measure `json:"by"`
	Tenants []metering.Cost  `json:"tenants"`
}

func (c *cli) tenantsUsageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "usage [SLUG] [--since 24h] [--top N --by db_time|requests|storage|tokens]",
		Short: "Show what a tenant cost over a period (requests, database time, rows, bytes, storage, tokens), or the top tenants by a measure",
		Long: `usage shows one tenant's metered usage over the period, its latest storage figure (an estimate for a
tenant of a shared database) and the model tokens charged to it in the period. Without SLUG it lists
the --top N tenants (default 10) with the most of --by.

Usage is as of the gateways' last flushes (every few seconds); storage as of the provisioner's last
hourly collection.`,
		Args: cobra.MaximumNArgs(1)}
	f := cmd.Flags()
	since := f.String("since", "24h", "the period, back from now: a duration (36h) or days (7d)")
	top := f.Int("top", 0, fmt.Sprintf("list the N tenants with the most of --by (default %d without SLUG)", defaultTop))
	by := f.String("by", string(metering.ByDBTime), "what --top ranks by: "+measureList())
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		window, err := parseSince("--since", *since)
		if err != nil {
			return err
		}
		measure := metering.Measure(*by)
		if !slices.Contains(metering.CostMeasures, measure) {
			return tenancy.Errorf(tenancy.CodeInvalid, "--by: must be one of %s (got %q)", measureList(), *by)
		}
		if len(args) == 1 && (f.Changed("top") || f.Changed("by")) {
			return tenancy.Errorf(tenancy.CodeInvalid, "--top and --by list the top tenants: give them without SLUG")
		}
		n := defaultTop
		if f.Changed("top") {
			if *top < 1 {
				return tenancy.Errorf(tenancy.CodeInvalid, "--top: must be 1 or more")
			}
			n = *top
		}
		return c.withUsage(cmd.Context(), func(store *catalog.Store, usage *metering.Store) error {
			from := time.Now().Add(-window).UTC().Truncate(time.Second)
			if len(args) == 1 {
				org, err := store.OrganizationBySlug(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				cost, err := usage.CostOf(cmd.Context(), org.ID, from)
				if err != nil {
					return err
				}
				if *output == "json" {
					return writeJSON(c.stdout, usageReport{Since: from, Cost: cost})
				}
				return costSheet(c.stdout, cost, from, *since)
			}
			costs, err := usage.Costs(cmd.Context(), from, measure, n)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, topReport{Since: from, By: measure, Tenants: nonNil(costs)})
			}
			return costTable(c.stdout, costs)
		})
	}
	return cmd
}

func measureList() string {
	names := make([]string, len(metering.CostMeasures))
	for i, m := range metering.CostMeasures {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// costSheet prints one tenant's costs, a figure a line.
func costSheet(w io.Writer, c metering.Cost, from time.Time, window string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ORGANIZATION\t%s (plan %s, %s)\n", escapeControl(c.Slug), escapeControl(c.Plan), placementCell(c))
	fmt.Fprintf(tw, "SINCE\t%s (%s)\n", from.Format(time.RFC3339), escapeControl(window))
	fmt.Fprintf(tw, "REQUESTS\t%d\n", c.Usage.Requests)
	fmt.Fprintf(tw, "DB TIME\t%s\n", durationCell(c.Usage.DBTime))
	fmt.Fprintf(tw, "ROWS READ\t%d\n", c.Usage.RowsRead)
	fmt.Fprintf(tw, "ROWS WRITTEN\t%d\n", c.Usage.RowsWritten)
	fmt.Fprintf(tw, "BYTES SENT\t%s\n", byteSize(c.Usage.BytesSent))
	fmt.Fprintf(tw, "EVENTS\t%d\n", c.Usage.Events)
	fmt.Fprintf(tw, "SOCKET SECONDS\t%d\n", c.Usage.SocketSeconds)
	fmt.Fprintf(tw, "STORAGE\t%s\n", storageCell(c))
	fmt.Fprintf(tw, "TOKENS\t%d\n", c.Tokens)
	return tw.Flush()
}

// costTable prints tenants' costs one a row.
func costTable(w io.Writer, costs []metering.Cost) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tPLAN\tPLACEMENT\tREQUESTS\tDB-TIME\tROWS-READ\tROWS-WRITTEN\tBYTES-SENT\tEVENTS\tSTORAGE\tTOKENS")
	for _, c := range costs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t%d\t%s\t%d\n",
			escapeControl(c.Slug), escapeControl(c.Plan), escapeControl(c.Kind), c.Usage.Requests, durationCell(c.Usage.DBTime),
			c.Usage.RowsRead, c.Usage.RowsWritten, byteSize(c.Usage.BytesSent), c.Usage.Events, byteSize(c.Storage.Bytes), c.Tokens)
	}
	return tw.Flush()
}

func placementCell(c metering.Cost) string {
	if c.Kind == "" {
		return "not placed"
	}
	return escapeControl(c.Kind) + " database " + escapeControl(c.DatabaseName)
}

func storageCell(c metering.Cost) string {
	if c.Storage.MeasuredAt.IsZero() {
		return "not measured yet (the provisioner measures it hourly)"
	}
	s := byteSize(c.Storage.Bytes)
	if c.Kind == tenancy.KindShared {
		s += " (estimate: its share of the shared tables, by rows)"
	}
	return s + ", measured " + c.Storage.MeasuredAt.Format(time.RFC3339)
}

func durationCell(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// byteSize writes n bytes in binary units (1.5 MiB).
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// adviceEntry is one piece of advice with the command that follows it.
type adviceEntry struct {
	metering.Advice
	// Command is the exact `tenants move` to run; empty for a review.
	Command string `json:"command,omitempty"`
}

// adviceReport is `tenants advise --output json`.
type adviceReport struct {
	Since  time.Time     `json:"since"`
	Advice []adviceEntry `json:"advice"`
}

func (c *cli) tenantsAdviseCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "advise [--since 7d] [--share 0.2] [--idle-floor 1m]",
		Short: "Advise placements from metered usage: noisy shared tenants to move out, idle dedicated ones (moves nothing)",
		Long: `advise reads the metered database time and the storage figures over the period and lists:

  - tenants of a shared database whose share of its database time or storage exceeds --share: noisy
    neighbours, advised to move to a dedicated database. A tenant whose own database time is under
    the idle floor is not noisy by time, whatever its share of an idle database;
  - tenants of a dedicated database whose database time stays under --idle-floor a day: advised to
    move back to the shared database, or, when their plan wants a dedicated database (enterprise),
    to have their placement reviewed.

Each entry gives the figures behind it and the exact command. advise never moves anything.`,
		Args: cobra.NoArgs}
	f := cmd.Flags()
	since := f.String("since", "7d", "the period, back from now: days (7d) or a duration (36h)")
	share := f.Float64("share", metering.DefaultAdviceShare, "fraction of a shared database's time or storage past which a tenant is noisy")
	floor := f.Duration("idle-floor", metering.DefaultIdleFloor, "database time per day under which a tenant is idle")
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		window, err := parseSince("--since", *since)
		if err != nil {
			return err
		}
		if !(*share > 0 && *share < 1) {
			return tenancy.Errorf(tenancy.CodeInvalid, "--share: must be between 0 and 1, such as 0.2 for 20%% (got %v)", *share)
		}
		if *floor <= 0 {
			return tenancy.Errorf(tenancy.CodeInvalid, "--idle-floor: must be a positive duration such as 1m")
		}
		return c.withUsage(cmd.Context(), func(_ *catalog.Store, usage *metering.Store) error {
			from := time.Now().Add(-window).UTC().Truncate(time.Second)
			shares, err := usage.Shares(cmd.Context(), from)
			if err != nil {
				return err
			}
			advice := metering.Advise(shares, metering.AdviceRules{Share: *share, IdleFloor: *floor, Window: window})
			entries := make([]adviceEntry, len(advice))
			for i, a := range advice {
				entries[i] = adviceEntry{Advice: a}
				if a.Action == metering.ActionMove {
					entries[i].Command = "tenantgate tenants move " + a.Slug + " --to " + a.To
				}
			}
			if *output == "json" {
				return writeJSON(c.stdout, adviceReport{Since: from, Advice: entries})
			}
			return adviceTable(c.stdout, entries, *share, *floor, *since)
		})
	}
	return cmd
}

// adviceTable prints the advice one a row, then why and what to run.
func adviceTable(w io.Writer, entries []adviceEntry, share float64, floor time.Duration, window string) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintf(w, "no placement advice over %s: no shared tenant above %.1f%% of its database, no dedicated tenant under %v of database time a day\n",
			escapeControl(window), share*100, floor)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tPLAN\tDATABASE\tKIND\tDB-TIME\tTIME-SHARE\tSTORAGE\tSTORAGE-SHARE\tADVICE")
	for _, e := range entries {
		advice := "review"
		if e.Action == metering.ActionMove {
			advice = "move to " + e.To
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s\t%.1f%%\t%s\n",
			escapeControl(e.Slug), escapeControl(e.Plan), escapeControl(e.DatabaseName), escapeControl(e.Kind),
			durationCell(e.Usage.DBTime), e.DBTimeShare*100, byteSize(e.Storage), e.StorageShare*100, advice)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, e := range entries {
		fmt.Fprintf(w, "%s: %s\n", escapeControl(e.Slug), escapeControl(e.Reason))
		if e.Command != "" {
			fmt.Fprintf(w, "  %s\n", escapeControl(e.Command))
		} else {
			fmt.Fprintf(w, "  review: tenantgate tenants show %s\n", escapeControl(e.Slug))
		}
	}
	return nil
}
