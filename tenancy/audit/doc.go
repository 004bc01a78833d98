// Package audit checks that a tenant database still isolates its tenants
// and still has the schema its migration version must have (issue 14).
//
// Isolation rests on properties of each database that init and the
// migrations set up once: row-level security enabled and forced on every
// tenant table, fail-closed policies, an application role that is not
// superuser, owns nothing and cannot bypass RLS, organization_id in every
// key, the move fence's triggers, grants no wider than needed. A hand-run
// ALTER during an incident can undo any of them silently; this package
// notices.
//
// # Use
//
//	a := audit.New(audit.Config{})                 // one per process: it caches
//	r, err := a.Audit(ctx, ownerDSN, appRole, v)   // v: the catalog's schema_version (0: the database's ledger)
//	r.Verdict                                      // audit.OK, audit.Drift or audit.Unsafe
//	r.Findings                                     // unsafe first: {Verdict, Property, Object, Message}
//	audit.ExitCode(audit.Worst(verdicts...))       // 0 ok, 3 drift only, 1 unsafe
//
// Audit is three steps, each usable alone:
//
//   - ReadDSN (or Read and ReadRole over a connection of the caller's)
//     fingerprints the database from the system catalogs and reads the
//     application role's facts from pg_roles: one batch, one round trip.
//   - Auditor.Expected computes the fingerprint the database must have: the
//     embedded tenant migrations applied up to the version in a scratch
//     database on the same server (created, migrated with tenancy/schema,
//     granted with schema.GrantApp, fingerprinted, dropped), cached per
//     server and version. Nothing about the schema is written here, so a
//     new migration needs no change to the audit.
//   - Compare judges the actual fingerprint and role facts against the
//     expected fingerprint, reading nothing.
//
// AuditAll audits many databases with bounded concurrency.
//
// # What is read (Fingerprint)
//
// For every relation of a user schema (public.schema_migrations and
// extension members left out): kind, owner, relrowsecurity and
// relforcerowsecurity, table and column ACLs; columns (format_type,
// NOT NULL, pg_get_expr of the default, identity, generated);
// constraints (pg_get_constraintdef, validated, key columns, referenced
// table); indexes (pg_get_indexdef, unique, primary, valid, key
// columns); user triggers (pg_get_triggerdef, tgenabled, function);
// policies (permissive or restrictive, command, roles, pg_get_expr of
// USING and WITH CHECK). Also functions (owner, SECURITY DEFINER, a digest
// of body and settings, EXECUTE grants), schemas (owner, grants), the
// database (owner, grants, ALTER DATABASE/ROLE … SET values, every object
// the application role owns per pg_shdepend), default privileges, and the
// migration ledger's version and dirty flag. ACLs are read with
// aclexplode(COALESCE(acl, acldefault(…))), so implicit defaults count.
//
// Role names are normalised so that the shared database and a dedicated
// one compare equal: the application role is "app", PUBLIC "public", the
// role owning the migration ledger (else the database) "owner".
//
// Role facts (ReadRole) are per server: the role's SUPERUSER, BYPASSRLS,
// CREATEDB, CREATEROLE and REPLICATION, its ALTER ROLE … SET values, and
// every role it is a member of (pg_has_role … 'MEMBER') with theirs.
//
// # Verdicts
//
// Unsafe, with the Property named:
//
//   - rls_disabled, rls_not_forced: a relation whose expected schema
//     enables (forces) RLS does not;
//   - policy: an expected policy missing or different, or a permissive
//     policy added to an expected table (an added restrictive one is drift);
//   - key_without_organization: a primary key or unique index of a table
//     with an organization_id column, or a foreign key between two such
//     tables, without organization_id;
//   - unprotected_table: a relation not in the expected schema (table,
//     view, materialized view, foreign table) that the application role
//     can read (grant to it, to PUBLIC or to a role it belongs to, and
//     USAGE on its schema) with RLS off;
//   - app_role_owns: an object owned by the application role, by a role it
//     is a member of, or the role a member of the owner role;
//   - app_role_attribute: SUPERUSER, BYPASSRLS, CREATEDB, CREATEROLE or
//     REPLICATION, its own or through membership, or membership in
//     pg_read_server_files, pg_write_server_files, pg_execute_server_program;
//   - grant_wider: a privilege the application role reaches (directly,
//     through PUBLIC or a role it belongs to) on a relation, column,
//     function, schema or the database that the expected schema does not
//     grant; default privileges to it; a new SECURITY DEFINER function it
//     can execute; membership in pg_read_all_data or pg_write_all_data;
//   - fence_trigger: an expected trigger running FenceFunction missing,
//     disabled (D, or R: replica only) or changed; the fence function
//     changed or missing; session_replication_role set for the role or
//     the database (triggers stop firing).
//
// Drift (PropertySchema, PropertyMigration): any other difference, each a
// Finding whose Message names it, e.g. "agents: index agents_name_idx not
// expected", "agents: column status default 'paused'::text, expected
// 'active'::text", "tasks: index tasks_status_idx missing"; narrower
// grants; more RLS than expected; a ledger at another version or dirty.
//
// # Rights
//
// Audit's dsn must be the database's owner DSN as the catalog records it
// (the provisioner migrates with it): it reads the ledger and, the first
// time per server and version, creates, migrates and drops a scratch
// database named Config.ScratchPrefix+"v<version>_<random>" there. The
// application role must exist on that server. Audit changes nothing in the
// audited database.
//
// # Integration (left to the callers)
//
// `tenantgate audit [--database NAME] [--output json]` runs AuditAll over
// the catalog's databases (shared, dedicated, each server's template) with
// their recorded versions, prints each Report (Report.String, or JSON: the
// types carry json tags) and exits with ExitCode(Worst(…)). The
// provisioner calls Audit after each provision, migration and move and
// every audit.interval, quarantines a database whose verdict is Unsafe as
// it does a dirty one, and releases it on an OK or Drift re-audit;
// Report.Properties gives what to log and store. Metrics count verdicts
// per state. An error from Audit means "could not audit", not unsafe.
package audit
