// Package move moves a tenant between the shared database and a dedicated
// one while the service runs (CONTRACT §6).
//
// A move marks the placement moving (gateways refuse the tenant's writes
// with 503 and keep serving its reads), fences the tenant inside the source
// database, copies its rows to the target in one snapshot, verifies them
// table by table, switches the placement to the target with a new epoch,
// and clears the source.
//
// The fence is what makes the move safe against gateways whose cached
// placement is stale: it is a row in the source database's tenant_fences
// table (tenant migration 000003), checked by a trigger on every tenant
// table, so no write of the tenant lands in the source once the copy's
// snapshot may have been taken, whichever replica sends it. The trigger
// refuses with SQLSTATE TG001, which the tenant data scope answers as 503
// tenant_unavailable. The invariant the package keeps is: the database the
// placement names is the only one not fenced for the tenant while the
// placement is ready. So the target is fenced too until the switch, and
// the source keeps its fence after the tenant left.
//
// Every step can be run again. A move that fails is undone, leaving the
// tenant served from the source; one that was killed is either completed
// by running Move again with the same destination, or undone by running it
// with the tenant's current kind.
package move
