package tenantdb

// Stores are all the tenant-data stores over one scope.
type Stores struct {
	Agents      *Agents
	Tasks       *Tasks
	Messages    *Messages
	Activity    *ActivityLog
	Sessions    *Sessions
	Schedules   *Schedules
	Idempotency *Idempotency
	// Scope is the scope under them, for work that spans tables (exports).
	Scope *Scope
}

// NewStores returns every store over scope.
func NewStores(scope *Scope) Stores {
	return Stores{
		Agents: NewAgents(scope), Tasks: NewTasks(scope), Messages: NewMessages(scope), Activity: NewActivityLog(scope),
		Sessions: NewSessions(scope), Schedules: NewSchedules(scope), Idempotency: NewIdempotency(scope), Scope: scope,
	}
}
