// Package fanout migrates the tenant schema across every database that
// holds tenant data — the shared ones and each dedicated one — as
// `tenantgate migrate tenants` does.
//
// A run is staged: shared databases first (they hold most tenants, and a
// problem there is found before it is repeated two hundred times), then a
// few dedicated "canary" databases one at a time, then the rest with
// bounded concurrency. Each database is migrated by golang-migrate through
// schema.MigrateTo, under that database's advisory lock and one migration
// at a time, so a cancelled run stops between two migrations and never in
// the middle of one; the application role's grants are renewed afterwards
// so new tables are reachable. A database that failed before its schema
// was touched (a refused connection) is tried again a few times; one that
// a migration left dirty never is.
//
// While a database is migrated its catalog row is marked dirty, so the
// gateway refuses its tenants with 503 tenant_unavailable instead of
// serving them against a half-changed schema; success clears the flag, a
// failure leaves it set (golang-migrate leaves the database dirty too) until
// an operator repairs it with Repair.
//
// Every run is written to a ledger in the catalog (migration_runs, and
// migration_results per database and run). A run that was interrupted —
// its context cancelled or its process killed — is resumed by the next Run
// with the same target: databases it finished are already at the target in
// the catalog and are skipped without being connected to.
package fanout
