package main

import (
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/provisioner"
)

func (c *cli) initCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the catalog and shared databases, the application role and the schemas (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if err := provisioner.Init(cmd.Context(), provisionerConfig(cfg), c.logger(cfg)); err != nil {
				return err
			}
			cmd.Println("tenantgate: catalog, shared database and application role are ready")
			return nil
		},
	}
	c.flag(cmd.Flags(), "shared_database_url", "shared tenant database URL")
	return cmd
}

func (c *cli) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway: public API on http_addr, ops endpoints on admin_addr",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if err := cfg.ValidateServe(); err != nil {
				return err
			}
			log := c.logger(cfg)
			g, err := newGateway(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return g.serve(cmd.Context(), cfg.HTTPAddr, cfg.AdminAddr, log)
		},
	}
	c.flag(cmd.Flags(), "http_addr", "public API listen address")
	c.flag(cmd.Flags(), "admin_addr", "ops listen address")
	c.flag(cmd.Flags(), "redis_url", "Redis URL; empty runs single-replica")
	c.flag(cmd.Flags(), "admin_token", "bearer token for /admin/*")
	return cmd
}
