package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Verdict is the outcome of auditing one database.
type Verdict string

// The verdicts, from best to worst.
const (
	// OK: the database matches the schema its version must have.
	OK Verdict = "ok"
	// Drift: the schema differs in ways that do not weaken isolation.
	Drift Verdict = "drift"
	// Unsafe: isolation is weakened; the database must not serve tenants.
	Unsafe Verdict = "unsafe"
)

func (v Verdict) rank() int {
	switch v {
	case OK:
		return 0
	case Drift:
		return 1
	}
	return 2
}

// Worst returns the worst of the verdicts (OK for none): a fleet is as
// good as its worst database.
func Worst(vs ...Verdict) Verdict {
	w := OK
	for _, v := range vs {
		if v.rank() > w.rank() {
			w = v
		}
	}
	return w
}

// Exit codes of `tenantgate audit`.
const (
	ExitOK     = 0
	ExitUnsafe = 1
	ExitDrift  = 3
)

// ExitCode maps a verdict (a fleet's: see Worst) to the exit code of
// `tenantgate audit`: 0 ok, 3 drift only, 1 anything unsafe.
func ExitCode(v Verdict) int {
	switch v {
	case OK:
		return ExitOK
	case Drift:
		return ExitDrift
	}
	return ExitUnsafe
}

// Property names what a finding is about. Every unsafe finding names one
// of the isolation properties below; every drift finding is PropertySchema
// (or PropertyMigration).
type Property string

// Isolation properties. A finding with one of these is Unsafe.
const (
	// A tenant table (one whose expected schema enables or forces RLS) has
	// row-level security disabled …
	PropertyRLSDisabled Property = "rls_disabled"
	// … or no longer forced, so its owner reads every tenant's rows.
	PropertyRLSNotForced Property = "rls_not_forced"
	// A policy of a tenant table differs from the expected one, is
	// missing, or a permissive policy was added.
	PropertyPolicy Property = "policy"
	// A primary key or unique index of a table with an organization_id
	// column, or a foreign key between two such tables, leaves out
	// organization_id: its checks see other tenants' rows.
	PropertyKey Property = "key_without_organization"
	// A relation not in the expected schema that the application role can
	// read has no row-level security.
	PropertyUnprotected Property = "unprotected_table"
	// The application role owns an object (or is a member of a role that
	// owns one): an owner can disable RLS.
	PropertyOwner Property = "app_role_owns"
	// The application role holds SUPERUSER, BYPASSRLS, CREATEDB,
	// CREATEROLE or REPLICATION, itself or through a role it is a member
	// of, or is a member of a predefined role that reads server files.
	PropertyRoleAttribute Property = "app_role_attribute"
	// The application role (or PUBLIC, or a role the application role is
	// a member of) holds a privilege the expected schema does not grant.
	PropertyGrant Property = "grant_wider"
	// A fence trigger of a tenant table is missing, disabled or changed,
	// its function changed, or a setting stops triggers from firing.
	PropertyFence Property = "fence_trigger"
)

// Drift properties. A finding with one of these is Drift.
const (
	// PropertySchema: a difference that does not weaken isolation.
	PropertySchema Property = "schema"
	// PropertyMigration: the migration ledger records another version
	// than the one audited against, or is dirty.
	PropertyMigration Property = "migration"
)

// Finding is one difference between a database and its expected schema.
type Finding struct {
	Verdict  Verdict  `json:"verdict"`
	Property Property `json:"property"`
	// Object is what the finding is about: a relation's name (e.g.
	// "agents"), "function f()", "schema s", "database", "application
	// role tenantgate_app".
	Object string `json:"object"`
	// Message says it readably, starting with Object, e.g.
	// "agents: index agents_name_idx not expected".
	Message string `json:"message"`
}

func (f Finding) String() string {
	if f.Verdict == Unsafe {
		return fmt.Sprintf("unsafe (%s): %s", f.Property, f.Message)
	}
	return "drift: " + f.Message
}

// Report is the verdict on one database with its reasons: unsafe findings
// first, then drift, each sorted.
type Report struct {
	// Database is the name of the audited database.
	Database string    `json:"database"`
	Verdict  Verdict   `json:"verdict"`
	Findings []Finding `json:"findings,omitempty"`
}

// ExitCode is ExitCode(r.Verdict).
func (r Report) ExitCode() int { return ExitCode(r.Verdict) }

// Properties lists, once each and sorted, the properties of the report's
// unsafe findings: what made it unsafe.
func (r Report) Properties() []Property {
	var ps []Property
	for _, f := range r.Findings {
		if f.Verdict == Unsafe && !slices.Contains(ps, f.Property) {
			ps = append(ps, f.Property)
		}
	}
	slices.Sort(ps)
	return ps
}

// Has reports whether some finding names property p.
func (r Report) Has(p Property) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Property == p })
}

// String is the verdict and one line per finding.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", r.Database, r.Verdict)
	for _, f := range r.Findings {
		b.WriteString("\n  " + f.String())
	}
	return b.String()
}

// Role is a role's attributes that matter to isolation.
type Role struct {
	Name        string `json:"name"`
	Superuser   bool   `json:"superuser,omitempty"`
	BypassRLS   bool   `json:"bypassrls,omitempty"`
	CreateDB    bool   `json:"createdb,omitempty"`
	CreateRole  bool   `json:"createrole,omitempty"`
	Replication bool   `json:"replication,omitempty"`
}

// RoleFacts is what pg_roles says of the application role on one server.
type RoleFacts struct {
	// Role holds the role's own attributes; Name is the role asked for,
	// even when it does not exist.
	Role
	Exists bool `json:"exists"`
	// Config holds the role's ALTER ROLE … SET values, "name=value".
	Config []string `json:"config,omitempty"`
	// MemberOf lists every role it is a member of, directly or not: it
	// can SET ROLE to each and act with its attributes and privileges.
	MemberOf []Role `json:"member_of,omitempty"`
}

// memberOf reports whether the role is a member of name. A superuser is
// a member of every role, which says nothing more than its SUPERUSER.
func (r RoleFacts) memberOf(name string) (Role, bool) {
	if r.Superuser {
		return Role{}, false
	}
	i := slices.IndexFunc(r.MemberOf, func(m Role) bool { return m.Name == name })
	if i < 0 {
		return Role{}, false
	}
	return r.MemberOf[i], true
}

// FenceFunction is the trigger function of the tier-move fence
// (migrations/tenant/000003_fence.up.sql): triggers that run it are fence
// triggers, whose absence is unsafe.
const FenceFunction = "tenant_fence_check"

// predefined roles whose membership widens what the application role can
// reach beyond any grant in a database.
var (
	readsAllData    = []string{"pg_read_all_data", "pg_write_all_data"}
	readsServerData = []string{"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program"}
)

// Compare judges actual against expected (the same schema version's
// fingerprint, see Auditor.Expected) and the server's facts of the
// application role. It reads nothing and changes nothing.
func Compare(expected, actual *Fingerprint, role RoleFacts) Report {
	c := &comparer{exp: expected, act: actual, role: role}
	c.roleFacts()
	c.source()
	c.database()
	c.schemas()
	c.relations()
	c.keys()
	c.functions()
	c.defaultPrivileges()
	slices.SortFunc(c.findings, func(a, b Finding) int {
		return cmp.Or(b.Verdict.rank()-a.Verdict.rank(), strings.Compare(a.Object, b.Object), strings.Compare(a.Message, b.Message))
	})
	c.findings = slices.Compact(c.findings)
	r := Report{Database: actual.Source.Database, Verdict: OK, Findings: c.findings}
	for _, f := range c.findings {
		r.Verdict = Worst(r.Verdict, f.Verdict)
	}
	return r
}

type comparer struct {
	exp, act *Fingerprint
	role     RoleFacts
	findings []Finding
}

func (c *comparer) unsafe(p Property, object, format string, args ...any) {
	c.findings = append(c.findings, Finding{Verdict: Unsafe, Property: p, Object: object, Message: object + ": " + fmt.Sprintf(format, args...)})
}

func (c *comparer) drift(object, format string, args ...any) {
	c.findings = append(c.findings, Finding{Verdict: Drift, Property: PropertySchema, Object: object, Message: object + ": " + fmt.Sprintf(format, args...)})
}

// reachesApp reports whether a privilege granted to grantee is one the
// application role holds: granted to it, to PUBLIC, or to a role it is a
// member of.
func (c *comparer) reachesApp(grantee string) bool {
	if grantee == "app" || grantee == "public" {
		return true
	}
	return c.appMember(grantee)
}

// appMember reports whether the application role is a member of the role
// written name in the fingerprint ("owner" stands for the real owner).
func (c *comparer) appMember(name string) bool {
	if name == "owner" {
		name = c.act.Source.OwnerRole
	}
	_, ok := c.role.memberOf(name)
	return ok
}

func (c *comparer) roleFacts() {
	r := c.role
	obj := "application role " + r.Name
	if !r.Exists {
		c.drift(obj, "does not exist on this server")
		return
	}
	attrs := func(x Role) []string {
		var a []string
		for _, at := range []struct {
			on   bool
			name string
		}{{x.Superuser, "SUPERUSER"}, {x.BypassRLS, "BYPASSRLS"}, {x.CreateDB, "CREATEDB"}, {x.CreateRole, "CREATEROLE"}, {x.Replication, "REPLICATION"}} {
			if at.on {
				a = append(a, at.name)
			}
		}
		return a
	}
	for _, a := range attrs(r.Role) {
		c.unsafe(PropertyRoleAttribute, obj, "has %s", a)
	}
	if r.Superuser { // a superuser is a member of every role: nothing more to say
		return
	}
	for _, m := range r.MemberOf {
		for _, a := range attrs(m) {
			c.unsafe(PropertyRoleAttribute, obj, "has %s through membership in %s", a, m.Name)
		}
		switch {
		case slices.Contains(readsAllData, m.Name):
			c.unsafe(PropertyGrant, obj, "member of %s", m.Name)
		case slices.Contains(readsServerData, m.Name):
			c.unsafe(PropertyRoleAttribute, obj, "member of %s", m.Name)
		case m.Name == c.act.Source.OwnerRole:
			c.unsafe(PropertyOwner, obj, "member of the owner role %s", m.Name)
		}
	}
	for _, s := range r.Config {
		if isReplicaMode(s) {
			c.unsafe(PropertyFence, obj, "setting %s stops triggers from firing", s)
		}
	}
}

// isReplicaMode reports whether a "name=value" setting makes sessions
// skip ordinary triggers, the fence among them.
func isReplicaMode(setting string) bool {
	name, value, _ := strings.Cut(setting, "=")
	return strings.EqualFold(strings.TrimSpace(name), "session_replication_role") &&
		!strings.EqualFold(strings.TrimSpace(value), "origin")
}

func (c *comparer) source() {
	e, a := c.exp.Source, c.act.Source
	if a.MigrationVersion != e.MigrationVersion {
		c.findings = append(c.findings, Finding{Verdict: Drift, Property: PropertyMigration, Object: "schema_migrations",
			Message: fmt.Sprintf("schema_migrations: version %d, audited against %d", a.MigrationVersion, e.MigrationVersion)})
	}
	if a.Dirty {
		c.findings = append(c.findings, Finding{Verdict: Drift, Property: PropertyMigration, Object: "schema_migrations",
			Message: "schema_migrations: dirty"})
	}
}

func (c *comparer) database() {
	e, a := c.exp.Database, c.act.Database
	for _, o := range a.AppOwned {
		if !slices.Contains(e.AppOwned, o) {
			c.unsafe(PropertyOwner, o, "owned by the application role")
		}
	}
	c.grants("database", "", e.Grants, a.Grants)
	for _, s := range a.Settings {
		if slices.Contains(e.Settings, s) {
			continue
		}
		roleName, setting, _ := strings.Cut(s, ": ")
		if isReplicaMode(setting) && c.reachesApp(roleName) {
			c.unsafe(PropertyFence, "database", "setting %q stops triggers from firing", s)
		} else {
			c.drift("database", "setting %q not expected", s)
		}
	}
	for _, s := range e.Settings {
		if !slices.Contains(a.Settings, s) {
			c.drift("database", "setting %q missing", s)
		}
	}
}

// grants compares two grant lists of object (what, when not empty, is
// inserted before a grant, e.g. "column x: "). A grant the application
// role reaches that was not expected is unsafe; any other difference is
// drift.
func (c *comparer) grants(object, what string, expected, actual []Grant) {
	for _, g := range actual {
		if slices.Contains(expected, g) {
			continue
		}
		if c.reachesApp(g.Grantee) {
			who := g.Grantee
			if who != "app" && who != "public" {
				who += ", a role the application role is a member of,"
			}
			c.unsafe(PropertyGrant, object, "%s%s granted to %s not expected", what, g.Privilege, who)
		} else {
			c.drift(object, "%sgrant %s not expected", what, g)
		}
	}
	for _, g := range expected {
		if !slices.Contains(actual, g) {
			c.drift(object, "%sgrant %s missing", what, g)
		}
	}
}

// owner compares an object's owner. An object the application role owns
// is reported once, from Database.AppOwned, and membership in the owner
// role once, from the role's facts.
func (c *comparer) owner(object, expected, actual string) {
	switch {
	case actual == "app", actual == expected:
	case actual != "owner" && c.appMember(actual):
		c.unsafe(PropertyOwner, object, "owned by %s, a role the application role is a member of", actual)
	default:
		c.drift(object, "owner %s, expected %s", actual, expected)
	}
}

func (c *comparer) schemas() {
	exp := index(c.exp.Schemas, func(s Schema) string { return s.Name })
	for _, a := range c.act.Schemas {
		obj := "schema " + a.Name
		e, ok := exp[a.Name]
		if !ok {
			c.drift(obj, "not expected")
			e = Schema{Owner: a.Owner}
		}
		c.owner(obj, e.Owner, a.Owner)
		c.grants(obj, "", e.Grants, a.Grants)
	}
	act := index(c.act.Schemas, func(s Schema) string { return s.Name })
	for _, e := range c.exp.Schemas {
		if _, ok := act[e.Name]; !ok {
			c.drift("schema "+e.Name, "missing")
		}
	}
}

func (c *comparer) relations() {
	exp := index(c.exp.Relations, func(r Relation) string { return r.Name })
	act := index(c.act.Relations, func(r Relation) string { return r.Name })
	for _, a := range c.act.Relations {
		if e, ok := exp[a.Name]; ok {
			c.relation(e, a)
			continue
		}
		c.drift(a.Name, "%s not expected", a.Kind)
		c.owner(a.Name, "owner", a.Owner)
		if c.readable(a) && !a.RLS && a.Kind != KindSequence {
			c.unsafe(PropertyUnprotected, a.Name, "%s readable by the application role without row-level security", a.Kind)
		}
	}
	for _, e := range c.exp.Relations {
		if _, ok := act[e.Name]; !ok {
			c.drift(e.Name, "%s missing", e.Kind)
		}
	}
}

// readable reports whether the application role can select from r: it
// owns it or reaches a SELECT grant on it or one of its columns, and can
// use its schema.
func (c *comparer) readable(r Relation) bool {
	selects := func(gs []Grant) bool {
		return slices.ContainsFunc(gs, func(g Grant) bool { return g.Privilege == "SELECT" && c.reachesApp(g.Grantee) })
	}
	can := r.Owner == "app" || c.appMember(r.Owner) || selects(r.Grants)
	for _, col := range r.Columns {
		can = can || selects(col.Grants)
	}
	if !can {
		return false
	}
	schemaName := "public"
	if s, _, ok := strings.Cut(r.Name, "."); ok {
		schemaName = s
	}
	i := slices.IndexFunc(c.act.Schemas, func(s Schema) bool { return s.Name == schemaName })
	if i < 0 {
		return true // cannot tell: assume it can
	}
	s := c.act.Schemas[i]
	return s.Owner == "app" || c.appMember(s.Owner) ||
		slices.ContainsFunc(s.Grants, func(g Grant) bool { return g.Privilege == "USAGE" && c.reachesApp(g.Grantee) })
}

func (c *comparer) relation(e, a Relation) {
	n := a.Name
	if a.Kind != e.Kind {
		c.drift(n, "%s, expected %s", a.Kind, e.Kind)
	}
	c.owner(n, e.Owner, a.Owner)
	switch {
	case e.RLS && !a.RLS:
		c.unsafe(PropertyRLSDisabled, n, "row-level security disabled")
	case !e.RLS && a.RLS:
		c.drift(n, "row-level security enabled, not expected")
	}
	switch {
	case e.ForceRLS && !a.ForceRLS:
		c.unsafe(PropertyRLSNotForced, n, "row-level security not forced")
	case !e.ForceRLS && a.ForceRLS:
		c.drift(n, "row-level security forced, not expected")
	}
	if a.Owner != "app" { // an owner holds every privilege: reported as owned
		c.grants(n, "", e.Grants, a.Grants)
	}
	c.columns(n, e.Columns, a.Columns)
	c.constraints(n, e.Constraints, a.Constraints)
	c.indexes(n, e.Indexes, a.Indexes)
	c.triggers(n, e.Triggers, a.Triggers)
	c.policies(n, e.Policies, a.Policies)
}

func (c *comparer) columns(n string, expected, actual []Column) {
	exp := index(expected, func(x Column) string { return x.Name })
	for _, a := range actual {
		e, ok := exp[a.Name]
		if !ok {
			c.drift(n, "column %s not expected", a.Name)
			c.grants(n, "column "+a.Name+": ", nil, a.Grants)
			continue
		}
		if a.Type != e.Type {
			c.drift(n, "column %s type %s, expected %s", a.Name, a.Type, e.Type)
		}
		if a.NotNull != e.NotNull {
			c.drift(n, "column %s %s, expected %s", a.Name, nullability(a.NotNull), nullability(e.NotNull))
		}
		if a.Default != e.Default {
			c.drift(n, "column %s default %s, expected %s", a.Name, orNone(a.Default), orNone(e.Default))
		}
		if a.Identity != e.Identity || a.Generated != e.Generated {
			c.drift(n, "column %s identity/generated %q/%q, expected %q/%q", a.Name, a.Identity, a.Generated, e.Identity, e.Generated)
		}
		c.grants(n, "column "+a.Name+": ", e.Grants, a.Grants)
	}
	act := index(actual, func(x Column) string { return x.Name })
	for _, e := range expected {
		if _, ok := act[e.Name]; !ok {
			c.drift(n, "column %s missing", e.Name)
		}
	}
}

func (c *comparer) constraints(n string, expected, actual []Constraint) {
	exp := index(expected, func(x Constraint) string { return x.Name })
	for _, a := range actual {
		e, ok := exp[a.Name]
		switch {
		case !ok:
			c.drift(n, "constraint %s not expected", a.Name)
		case a.Definition != e.Definition || a.Type != e.Type:
			c.drift(n, "constraint %s is %s, expected %s", a.Name, a.Definition, e.Definition)
		case a.Validated != e.Validated:
			c.drift(n, "constraint %s not validated", a.Name)
		}
	}
	act := index(actual, func(x Constraint) string { return x.Name })
	for _, e := range expected {
		if _, ok := act[e.Name]; !ok {
			c.drift(n, "constraint %s missing", e.Name)
		}
	}
}

func (c *comparer) indexes(n string, expected, actual []Index) {
	exp := index(expected, func(x Index) string { return x.Name })
	for _, a := range actual {
		e, ok := exp[a.Name]
		switch {
		case !ok:
			c.drift(n, "index %s not expected", a.Name)
		case a.Definition != e.Definition:
			c.drift(n, "index %s is %s, expected %s", a.Name, a.Definition, e.Definition)
		case a.Valid != e.Valid:
			c.drift(n, "index %s invalid", a.Name)
		}
	}
	act := index(actual, func(x Index) string { return x.Name })
	for _, e := range expected {
		if _, ok := act[e.Name]; !ok {
			c.drift(n, "index %s missing", e.Name)
		}
	}
}

func (c *comparer) triggers(n string, expected, actual []Trigger) {
	act := index(actual, func(x Trigger) string { return x.Name })
	for _, e := range expected {
		a, ok := act[e.Name]
		fence := e.Function == FenceFunction
		var problem string
		switch {
		case !ok:
			problem = "missing"
		case a.Definition != e.Definition || a.Function != e.Function:
			problem = "changed to " + a.Definition
		case a.Enabled != e.Enabled && (a.Enabled == "D" || a.Enabled == "R"):
			problem = "disabled"
		case a.Enabled != e.Enabled:
			problem = fmt.Sprintf("enabled %s, expected %s", a.Enabled, e.Enabled)
			fence = false // more firing, not less
		default:
			continue
		}
		if fence {
			c.unsafe(PropertyFence, n, "fence trigger %s %s", e.Name, problem)
		} else {
			c.drift(n, "trigger %s %s", e.Name, problem)
		}
	}
	exp := index(expected, func(x Trigger) string { return x.Name })
	for _, a := range actual {
		if _, ok := exp[a.Name]; !ok {
			c.drift(n, "trigger %s not expected", a.Name)
		}
	}
}

// policies: any change to the expected policies of a table is unsafe, as
// is an added permissive policy (permissive policies are OR-ed: one more
// widens what is visible). An added restrictive policy only narrows.
func (c *comparer) policies(n string, expected, actual []Policy) {
	act := index(actual, func(x Policy) string { return x.Name })
	for _, e := range expected {
		a, ok := act[e.Name]
		switch {
		case !ok:
			c.unsafe(PropertyPolicy, n, "policy %s missing", e.Name)
		case !policyEqual(a, e):
			c.unsafe(PropertyPolicy, n, "policy %s is %s, expected %s", e.Name, describePolicy(a), describePolicy(e))
		}
	}
	exp := index(expected, func(x Policy) string { return x.Name })
	for _, a := range actual {
		if _, ok := exp[a.Name]; ok {
			continue
		}
		if a.Permissive {
			c.unsafe(PropertyPolicy, n, "permissive policy %s not expected: %s", a.Name, describePolicy(a))
		} else {
			c.drift(n, "restrictive policy %s not expected: %s", a.Name, describePolicy(a))
		}
	}
}

func policyEqual(a, b Policy) bool {
	return a.Permissive == b.Permissive && a.Command == b.Command && slices.Equal(a.Roles, b.Roles) &&
		a.Using == b.Using && a.Check == b.Check
}

func describePolicy(p Policy) string {
	kind := "restrictive"
	if p.Permissive {
		kind = "permissive"
	}
	s := fmt.Sprintf("%s FOR %s TO %s", kind, p.Command, strings.Join(p.Roles, ", "))
	if p.Using != "" {
		s += " USING " + p.Using
	}
	if p.Check != "" {
		s += " WITH CHECK " + p.Check
	}
	return s
}

// keys checks every table with an organization_id column, expected or
// not: constraint checks see other tenants' rows, so a key without
// organization_id tells one tenant whether another's value exists.
func (c *comparer) keys() {
	tenant := map[string]bool{}
	for _, r := range c.act.Relations {
		if (r.Kind == KindTable || r.Kind == KindPartitionedTable) &&
			slices.ContainsFunc(r.Columns, func(col Column) bool { return col.Name == "organization_id" }) {
			tenant[r.Name] = true
		}
	}
	for _, r := range c.act.Relations {
		if !tenant[r.Name] {
			continue
		}
		for _, ix := range r.Indexes {
			if !ix.Unique || slices.Contains(ix.Columns, "organization_id") {
				continue
			}
			what := "unique index"
			if ix.Primary {
				what = "primary key"
			}
			c.unsafe(PropertyKey, r.Name, "%s %s does not include organization_id", what, ix.Name)
		}
		for _, k := range r.Constraints {
			if k.Type == "FOREIGN KEY" && tenant[k.References] && !slices.Contains(k.Columns, "organization_id") {
				c.unsafe(PropertyKey, r.Name, "foreign key %s to %s does not include organization_id", k.Name, k.References)
			}
		}
	}
}

func (c *comparer) functions() {
	exp := index(c.exp.Functions, func(f Function) string { return f.Name })
	for _, a := range c.act.Functions {
		obj := "function " + a.Name
		e, ok := exp[a.Name]
		if !ok {
			c.drift(obj, "not expected")
			c.owner(obj, "owner", a.Owner)
			if a.SecurityDefiner && slices.ContainsFunc(a.Grants, func(g Grant) bool { return g.Privilege == "EXECUTE" && c.reachesApp(g.Grantee) }) {
				c.unsafe(PropertyGrant, obj, "security definer function executable by the application role not expected")
			}
			continue
		}
		fence := strings.HasPrefix(a.Name, FenceFunction+"(")
		if a.Digest != e.Digest || a.SecurityDefiner != e.SecurityDefiner || a.Kind != e.Kind {
			if fence {
				c.unsafe(PropertyFence, obj, "fence function changed")
			} else {
				c.drift(obj, "changed")
			}
		}
		c.owner(obj, e.Owner, a.Owner)
		c.grants(obj, "", e.Grants, a.Grants)
	}
	act := index(c.act.Functions, func(f Function) string { return f.Name })
	for _, e := range c.exp.Functions {
		if _, ok := act[e.Name]; !ok {
			if strings.HasPrefix(e.Name, FenceFunction+"(") {
				c.unsafe(PropertyFence, "function "+e.Name, "fence function missing")
			} else {
				c.drift("function "+e.Name, "missing")
			}
		}
	}
}

func (c *comparer) defaultPrivileges() {
	describe := func(d DefaultPrivilege) string {
		s := "default privileges of " + d.Role + " on " + d.Objects
		if d.Schema != "" {
			s += " in schema " + d.Schema
		}
		return s
	}
	for _, a := range c.act.DefaultPrivileges {
		if slices.Contains(c.exp.DefaultPrivileges, a) {
			continue
		}
		if c.reachesApp(a.Grant.Grantee) {
			c.unsafe(PropertyGrant, "database", "%s grant %s, not expected", describe(a), a.Grant)
		} else {
			c.drift("database", "%s grant %s, not expected", describe(a), a.Grant)
		}
	}
	for _, e := range c.exp.DefaultPrivileges {
		if !slices.Contains(c.act.DefaultPrivileges, e) {
			c.drift("database", "%s grant %s missing", describe(e), e.Grant)
		}
	}
}

func index[T any](xs []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(xs))
	for _, x := range xs {
		m[key(x)] = x
	}
	return m
}

func nullability(notNull bool) string {
	if notNull {
		return "NOT NULL"
	}
	return "nullable"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
