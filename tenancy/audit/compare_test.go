package audit

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sample is a small fingerprint in the shape of the tenant schema.
func sample() *Fingerprint {
	isolation := "(organization_id = (NULLIF(current_setting('app.organization_id'::text, true), ''::text))::uuid)"
	dml := []Grant{{Grantee: "app", Privilege: "DELETE"}, {Grantee: "app", Privilege: "INSERT"},
		{Grantee: "app", Privilege: "SELECT"}, {Grantee: "app", Privilege: "UPDATE"}}
	tenantTable := func(name string, fks ...Constraint) Relation {
		return Relation{
			Name: name, Kind: KindTable, Owner: "owner", RLS: true, ForceRLS: true, Grants: dml,
			Columns: []Column{{Name: "agent_id", Type: "uuid"}, {Name: "id", Type: "uuid", NotNull: true, Default: "gen_random_uuid()"},
				{Name: "organization_id", Type: "uuid", NotNull: true}},
			Constraints: append([]Constraint{{Name: name + "_pkey", Type: "PRIMARY KEY", Definition: "PRIMARY KEY (organization_id, id)",
				Validated: true, Columns: []string{"organization_id", "id"}}}, fks...),
			Indexes: []Index{{Name: name + "_pkey", Definition: "CREATE UNIQUE INDEX " + name + "_pkey ON public." + name + " USING btree (organization_id, id)",
				Unique: true, Primary: true, Valid: true, Columns: []string{"organization_id", "id"}}},
			Triggers: []Trigger{{Name: "tenant_fence_insert", Definition: "CREATE TRIGGER tenant_fence_insert AFTER INSERT ON public." + name,
				Enabled: "O", Function: FenceFunction}},
			Policies: []Policy{{Name: "tenant_isolation", Permissive: true, Command: "ALL", Roles: []string{"public"},
				Using: isolation, Check: isolation}},
		}
	}
	return &Fingerprint{
		Source:   Source{Database: "db", OwnerRole: "tg_owner", ServerVersion: 150020, MigrationVersion: 3},
		Database: Database{Owner: "owner", Grants: []Grant{{Grantee: "app", Privilege: "CONNECT"}, {Grantee: "app", Privilege: "TEMPORARY"}}},
		Schemas: []Schema{{Name: "public", Owner: "pg_database_owner",
			Grants: []Grant{{Grantee: "app", Privilege: "USAGE"}, {Grantee: "public", Privilege: "USAGE"}}}},
		Relations: []Relation{
			tenantTable("agents"),
			tenantTable("tasks", Constraint{Name: "tasks_organization_id_agent_id_fkey", Type: "FOREIGN KEY",
				Definition: "FOREIGN KEY (organization_id, agent_id) REFERENCES agents(organization_id, id)", Validated: true,
				Columns: []string{"organization_id", "agent_id"}, References: "agents"}),
		},
		Functions: []Function{{Name: FenceFunction + "()", Kind: "f", Owner: "owner", SecurityDefiner: true, Digest: "d1"}},
	}
}

func clone(t *testing.T, f *Fingerprint) *Fingerprint {
	b, err := json.Marshal(f)
	require.NoError(t, err)
	var out Fingerprint
	require.NoError(t, json.Unmarshal(b, &out))
	return &out
}

func plainApp() RoleFacts {
	return RoleFacts{Role: Role{Name: "tg_app"}, Exists: true}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		breakIt func(f *Fingerprint, r *RoleFacts)
		verdict Verdict
		props   []Property
		msg     string
	}{
		{"identical", func(*Fingerprint, *RoleFacts) {}, OK, nil, ""},
		{"superuser, member of everything", func(_ *Fingerprint, r *RoleFacts) {
			r.Superuser = true
			r.MemberOf = []Role{{Name: "pg_read_all_data"}, {Name: "postgres", Superuser: true, BypassRLS: true}, {Name: "tg_owner"}}
		}, Unsafe, []Property{PropertyRoleAttribute}, "application role tg_app: has SUPERUSER"},
		{"bypassrls through membership", func(_ *Fingerprint, r *RoleFacts) {
			r.MemberOf = []Role{{Name: "ops", BypassRLS: true}}
		}, Unsafe, []Property{PropertyRoleAttribute}, "application role tg_app: has BYPASSRLS through membership in ops"},
		{"member of the owner role", func(_ *Fingerprint, r *RoleFacts) {
			r.MemberOf = []Role{{Name: "tg_owner"}}
		}, Unsafe, []Property{PropertyOwner}, "application role tg_app: member of the owner role tg_owner"},
		{"replica mode for the role", func(_ *Fingerprint, r *RoleFacts) {
			r.Config = []string{"session_replication_role=replica"}
		}, Unsafe, []Property{PropertyFence}, "application role tg_app: setting session_replication_role=replica stops triggers from firing"},
		{"replica mode for the database", func(f *Fingerprint, _ *RoleFacts) {
			f.Database.Settings = []string{"public: session_replication_role=replica"}
		}, Unsafe, []Property{PropertyFence}, `database: setting "public: session_replication_role=replica" stops triggers from firing`},
		{"other database setting", func(f *Fingerprint, _ *RoleFacts) {
			f.Database.Settings = []string{"public: work_mem=64MB"}
		}, Drift, nil, `database: setting "public: work_mem=64MB" not expected`},
		{"role missing", func(_ *Fingerprint, r *RoleFacts) { *r = RoleFacts{Role: Role{Name: "tg_app"}} },
			Drift, nil, "application role tg_app: does not exist on this server"},
		{"restrictive policy added", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[0].Policies = append(f.Relations[0].Policies, Policy{Name: "no_deleted", Command: "SELECT", Roles: []string{"public"}, Using: "(deleted_at IS NULL)"})
		}, Drift, nil, "agents: restrictive policy no_deleted not expected: restrictive FOR SELECT TO public USING (deleted_at IS NULL)"},
		{"policy dropped", func(f *Fingerprint, _ *RoleFacts) { f.Relations[1].Policies = nil },
			Unsafe, []Property{PropertyPolicy}, "tasks: policy tenant_isolation missing"},
		{"policy to another role", func(f *Fingerprint, _ *RoleFacts) { f.Relations[1].Policies[0].Roles = []string{"app"} },
			Unsafe, []Property{PropertyPolicy}, ""},
		{"foreign key without organization", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[1].Constraints = append(f.Relations[1].Constraints, Constraint{Name: "tasks_agent_fkey", Type: "FOREIGN KEY",
				Definition: "FOREIGN KEY (agent_id) REFERENCES agents(id)", Validated: true, Columns: []string{"agent_id"}, References: "agents"})
		}, Unsafe, []Property{PropertyKey}, "tasks: foreign key tasks_agent_fkey to agents does not include organization_id"},
		{"primary key without organization", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[0].Indexes[0].Columns = []string{"id"}
			f.Relations[0].Indexes[0].Definition = "CREATE UNIQUE INDEX agents_pkey ON public.agents USING btree (id)"
		}, Unsafe, []Property{PropertyKey}, "agents: primary key agents_pkey does not include organization_id"},
		{"grant to a role the app belongs to", func(f *Fingerprint, r *RoleFacts) {
			r.MemberOf = []Role{{Name: "reporting"}}
			f.Relations[0].Grants = append(f.Relations[0].Grants, Grant{Grantee: "reporting", Privilege: "TRUNCATE"})
		}, Unsafe, []Property{PropertyGrant}, "agents: TRUNCATE granted to reporting, a role the application role is a member of, not expected"},
		{"grant to an unrelated role", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[0].Grants = append(f.Relations[0].Grants, Grant{Grantee: "reporting", Privilege: "SELECT"})
		}, Drift, nil, "agents: grant SELECT to reporting not expected"},
		{"column grant to public", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[0].Columns[0].Grants = []Grant{{Grantee: "public", Privilege: "SELECT"}}
		}, Unsafe, []Property{PropertyGrant}, "agents: column agent_id: SELECT granted to public not expected"},
		{"default privileges for app", func(f *Fingerprint, _ *RoleFacts) {
			f.DefaultPrivileges = []DefaultPrivilege{{Role: "owner", Objects: "tables", Grant: Grant{Grantee: "app", Privilege: "TRUNCATE"}}}
		}, Unsafe, []Property{PropertyGrant}, "database: default privileges of owner on tables grant TRUNCATE to app, not expected"},
		{"new security definer function", func(f *Fingerprint, _ *RoleFacts) {
			f.Functions = append(f.Functions, Function{Name: "peek(uuid)", Kind: "f", Owner: "owner", SecurityDefiner: true, Digest: "x",
				Grants: []Grant{{Grantee: "public", Privilege: "EXECUTE"}}})
		}, Unsafe, []Property{PropertyGrant}, "function peek(uuid): security definer function executable by the application role not expected"},
		{"new plain function", func(f *Fingerprint, _ *RoleFacts) {
			f.Functions = append(f.Functions, Function{Name: "slug(text)", Kind: "f", Owner: "owner", Digest: "x",
				Grants: []Grant{{Grantee: "public", Privilege: "EXECUTE"}}})
		}, Drift, nil, "function slug(text): not expected"},
		{"fence function changed", func(f *Fingerprint, _ *RoleFacts) { f.Functions[0].Digest = "d2" },
			Unsafe, []Property{PropertyFence}, "function tenant_fence_check(): fence function changed"},
		{"fence trigger replica only", func(f *Fingerprint, _ *RoleFacts) { f.Relations[0].Triggers[0].Enabled = "R" },
			Unsafe, []Property{PropertyFence}, "agents: fence trigger tenant_fence_insert disabled"},
		{"fence trigger always", func(f *Fingerprint, _ *RoleFacts) { f.Relations[0].Triggers[0].Enabled = "A" },
			Drift, nil, "agents: trigger tenant_fence_insert enabled A, expected O"},
		{"new view readable by app", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations = append(f.Relations, Relation{Name: "all_agents", Kind: KindView, Owner: "owner",
				Grants: []Grant{{Grantee: "app", Privilege: "SELECT"}}})
		}, Unsafe, []Property{PropertyUnprotected}, "all_agents: view readable by the application role without row-level security"},
		{"new table in a schema the app cannot use", func(f *Fingerprint, _ *RoleFacts) {
			f.Schemas = append(f.Schemas, Schema{Name: "private", Owner: "owner"})
			f.Relations = append(f.Relations, Relation{Name: "private.keys", Kind: KindTable, Owner: "owner",
				Grants: []Grant{{Grantee: "app", Privilege: "SELECT"}}})
		}, Drift, nil, "private.keys: table not expected"},
		{"new table owned by a role the app belongs to", func(f *Fingerprint, r *RoleFacts) {
			r.MemberOf = []Role{{Name: "etl"}}
			f.Relations = append(f.Relations, Relation{Name: "staging", Kind: KindTable, Owner: "etl"})
		}, Unsafe, []Property{PropertyOwner, PropertyUnprotected}, "staging: owned by etl, a role the application role is a member of"},
		{"app owns a type", func(f *Fingerprint, _ *RoleFacts) { f.Database.AppOwned = []string{"type mood"} },
			Unsafe, []Property{PropertyOwner}, "type mood: owned by the application role"},
		{"more protection is drift", func(f *Fingerprint, _ *RoleFacts) {
			f.Relations[0].Grants = f.Relations[0].Grants[2:] // no DELETE, no INSERT
		}, Drift, nil, "agents: grant DELETE to app missing"},
		{"dirty ledger", func(f *Fingerprint, _ *RoleFacts) { f.Source.Dirty = true },
			Drift, nil, "schema_migrations: dirty"},
		{"table missing", func(f *Fingerprint, _ *RoleFacts) { f.Relations = f.Relations[:1] },
			Drift, nil, "tasks: table missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			expected := sample()
			actual, role := clone(t, expected), plainApp()
			tc.breakIt(actual, &role)
			r := Compare(expected, actual, role)
			assert.Equal(t, tc.verdict, r.Verdict, r.String())
			assert.Equal(t, tc.props, r.Properties(), r.String())
			if tc.msg != "" {
				assert.Contains(t, messages(r), tc.msg, r.String())
			}
			// Unsafe findings come first.
			for i := 1; i < len(r.Findings); i++ {
				assert.GreaterOrEqual(t, r.Findings[i-1].Verdict.rank(), r.Findings[i].Verdict.rank())
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verdicts []Verdict
		worst    Verdict
		code     int
	}{
		{nil, OK, 0},
		{[]Verdict{OK, OK}, OK, 0},
		{[]Verdict{OK, Drift, OK}, Drift, 3},
		{[]Verdict{Drift, Unsafe, OK}, Unsafe, 1},
	} {
		w := Worst(tc.verdicts...)
		assert.Equal(t, tc.worst, w)
		assert.Equal(t, tc.code, ExitCode(w))
	}
}

func TestEqualAndDigestIgnoreSource(t *testing.T) {
	t.Parallel()
	a := sample()
	b := clone(t, a)
	b.Source = Source{Database: "other", OwnerRole: "someone"}
	assert.True(t, Equal(a, b))
	assert.Equal(t, a.Digest(), b.Digest())
	b.Relations[0].Indexes[0].Definition += " "
	assert.False(t, Equal(a, b))
	assert.NotEqual(t, a.Digest(), b.Digest())
}
