package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/provisioner/fanout"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// demoTenants are what `dev` seeds: two on the shared database, one on a
// database of its own.
var demoTenants = []struct {
	slug, name string
	plan       tenancy.Plan
}{
	{"acme", "Acme Corp", tenancy.PlanPro},
	{"globex", "Globex", tenancy.PlanFree},
	{"initech", "Initech", tenancy.PlanEnterprise},
}

const demoPassword = "tenantgate-demo"

func (c *cli) devCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Quickstart: init, seed demo tenants, run the gateway and the provisioner, print example requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if cfg.JWTSecret == "" {
				// dev is the one command allowed to make up a secret; tokens
				// die with the process.
				cfg.JWTSecret = randomSecret()
			}
			if err := cfg.ValidateServe(); err != nil {
				return err
			}
			log := c.logger(cfg)
			ctx := cmd.Context()
			if err := provisioner.Init(ctx, provisionerConfig(cfg), log); err != nil {
				return err
			}
			if err := seed(ctx, cfg, log); err != nil {
				return err
			}
			// An earlier dev run may have left dedicated databases on an
			// older schema: bring every database to the newest.
			if err := c.withFanout(ctx, func(r *fanout.Runner) error {
				rep, err := r.Run(ctx, fanout.Options{ContinueOnError: true}, nil)
				if err == nil && rep.Failed > 0 {
					err = fmt.Errorf("%d databases failed to migrate; see `tenantgate migrate status`", rep.Failed)
				}
				return err
			}); err != nil {
				return err
			}
			g, err := newGateway(ctx, cfg, log)
			if err != nil {
				return err
			}
			var shared broadcast.Bus
			if cfg.RedisURL == "" {
				shared = g.bus // one process, one in-process bus
			}
			svc, err := newProvisionerService(ctx, cfg, log, shared, g.reg)
			if err != nil {
				g.close()
				return err
			}
			defer svc.close()
			// The provisioner runs beside the gateway until ctx ends.
			stopWorker := runInBackground(svc.run)
			defer stopWorker()
			printExamples(c.stdout, cfg)
			return g.serve(ctx, cfg.HTTPAddr, cfg.AdminAddr, log)
		},
	}
	c.flag(cmd.Flags(), "http_addr", "public API listen address")
	c.flag(cmd.Flags(), "admin_addr", "ops listen address")
	return cmd
}

// seed creates the demo organizations that do not exist yet, so dev can be
// run again and again.
func seed(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	pool, store, err := openCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	p := provisioner.New(provisionerConfig(cfg), store, log)
	defer p.Close()
	for _, d := range demoTenants {
		if _, err := store.OrganizationBySlug(ctx, d.slug); err == nil {
			continue
		}
		req, err := createRequest(d.slug, d.name, string(d.plan), "owner@"+d.slug+".test", demoPassword)
		if err != nil {
			return err
		}
		if _, err := p.CreateOrganization(ctx, req); err != nil && tenancy.ErrorCode(err) != tenancy.CodeConflict {
			return fmt.Errorf("seed %s: %w", d.slug, err)
		}
	}
	return ensureDemoOwners(ctx, store)
}

// ensureDemoOwners fails early if a previous, different seed left the demo
// organizations without the owners the printed examples log in as.
func ensureDemoOwners(ctx context.Context, store *catalog.Store) error {
	for _, d := range demoTenants {
		if _, err := store.UserByEmail(ctx, "owner@"+d.slug+".test"); err != nil {
			return fmt.Errorf("demo organization %s has no owner owner@%s.test: %w", d.slug, d.slug, err)
		}
	}
	return nil
}

func printExamples(w io.Writer, cfg config.Config) {
	base := "http://" + hostPort(cfg.HTTPAddr)
	admin := "http://" + hostPort(cfg.AdminAddr)
	fmt.Fprintf(w, `
tenantgate dev is running.
  public API  %[1]s
  ops         %[2]s/healthz  %[2]s/readyz  %[2]s/metrics

Demo organizations (password for every owner: %[3]s):
  acme     pro         shared     owner@acme.test
  globex   free        shared     owner@globex.test
  initech  enterprise  dedicated  owner@initech.test

Try:
  TOKEN=$(curl -s -X POST %[1]s/api/auth/login -H 'Content-Type: application/json' \
    -d '{"email":"owner@acme.test","password":"%[3]s"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s -X POST %[1]s/api/agents -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"name":"researcher","model":"gpt-5"}'
  curl -s %[1]s/api/agents -H "Authorization: Bearer $TOKEN"
  curl -s %[1]s/api/auth/me -H "Authorization: Bearer $TOKEN"

Log in as owner@initech.test instead to use the tenant on its own database.
Press Ctrl-C to stop.
`, base, admin, demoPassword)
}

// hostPort makes a listen address into one a client can dial.
func hostPort(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "localhost" + addr
	}
	return addr
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
