package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// withProvisioner runs fn with a provisioner over the catalog whose
// changes reach every gateway.
func (c *cli) withProvisioner(cmd *cobra.Command, fn func(*provisioner.Provisioner) error) error {
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
		p := provisioner.New(provisionerConfig(cfg), store, c.logger(cfg))
		defer p.Close()
		p.Publish = svc.OrganizationChanged
		return fn(p)
	})
}

func (c *cli) tenantsExportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "export SLUG [--out FILE|-] [--with-users]",
		Short: "Write an organization's data as one checksummed archive (README: Backups, exports and restores)",
		Args:  cobra.ExactArgs(1)}
	out := cmd.Flags().String("out", "", "archive file, or - for standard output (default SLUG-<time>.tgarchive)")
	withUsers := cmd.Flags().Bool("with-users", false, "add users' emails and roles (never password or key hashes)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := *out
		if path == "" {
			path = fmt.Sprintf("%s-%s.tgarchive", args[0], time.Now().UTC().Format("20060102T150405Z"))
		}
		return c.withProvisioner(cmd, func(p *provisioner.Provisioner) error {
			if path == "-" {
				_, err := p.ExportOrganization(cmd.Context(), args[0], c.stdout, *withUsers)
				return err
			}
			m, err := writeAtomically(path, func(w io.Writer) (archive.Manifest, error) {
				return p.ExportOrganization(cmd.Context(), args[0], w, *withUsers)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "exported organization %s (%d rows in %d tables, schema version %d) to %s\n",
				escapeControl(m.Organization.Slug), rows(m), len(m.Tables), m.SchemaVersion, escapeControl(path))
			return nil
		})
	}
	return cmd
}

// writeAtomically writes a file through a temporary one beside it, renamed
// into place only once write succeeded: a failed export leaves no file.
func writeAtomically(path string, write func(io.Writer) (archive.Manifest, error)) (archive.Manifest, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return archive.Manifest{}, err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	m, err := write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, err
	}
	return m, os.Rename(tmp.Name(), path)
}

func rows(m archive.Manifest) int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

func (c *cli) tenantsImportCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "import FILE --slug S [--name N] [--plan P] [--wait]",
		Short: "Create a new organization from an archive (verified whole first; nothing is left behind on failure)",
		Args:  cobra.ExactArgs(1)}
	f := cmd.Flags()
	slug := f.String("slug", "", "slug of the new organization (required)")
	name := f.String("name", "", "display name (default: the archive's)")
	plan := f.String("plan", "", "plan (default: the archive's); enterprise gets its own database")
	f.Bool("wait", true, "accepted for symmetry: an import always runs to its end")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *slug == "" {
			return tenancy.Errorf(tenancy.CodeInvalid, "--slug: required")
		}
		req := provisioner.ImportOrganization{Slug: *slug, Name: *name}
		if *plan != "" {
			p, err := tenancy.ParsePlan(*plan)
			if err != nil {
				return err
			}
			req.Plan = p
		}
		open := func() (io.ReadCloser, error) { return os.Open(args[0]) }
		return c.withProvisioner(cmd, func(p *provisioner.Provisioner) error {
			org, err := p.ImportOrganization(cmd.Context(), open, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "imported organization %s (%s), plan %s, placement %s\n",
				escapeControl(org.Slug), org.ID, org.Plan, org.Placement)
			return nil
		})
	}
	return cmd
}

func (c *cli) tenantsRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "restore SLUG FILE --yes [--wait]",
		Short: "Replace an organization's data with an archive of it, all or nothing (writes get 503 meanwhile)",
		Args:  cobra.ExactArgs(2)}
	yes := cmd.Flags().Bool("yes", false, "really replace the organization's data")
	cmd.Flags().Bool("wait", true, "accepted for symmetry: a restore always runs to its end")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !*yes {
			return tenancy.Errorf(tenancy.CodeInvalid, "restore replaces organization %s's data: add --yes", args[0])
		}
		file, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer file.Close()
		return c.withProvisioner(cmd, func(p *provisioner.Provisioner) error {
			m, err := p.RestoreOrganization(cmd.Context(), args[0], file)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "restored organization %s to its archive of %s (%d rows)\n",
				escapeControl(args[0]), m.ExportedAt.Format(time.RFC3339), rows(m))
			return nil
		})
	}
	return cmd
}
