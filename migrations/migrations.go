// Package migrations embeds tenantgate's SQL migrations: catalog/ for the
// control-plane database and tenant/ for every database that holds tenant
// data (the shared one and each dedicated one), so one migration set serves
// all of them. It holds SQL only; tenancy/schema runs it.
package migrations

import "embed"

// Catalog holds the control-plane schema, files NNNNNN_title.{up,down}.sql.
//
//go:embed catalog/*.sql
var Catalog embed.FS

// Tenant holds the tenant-data schema, row-level security included.
//
//go:embed tenant/*.sql
var Tenant embed.FS
