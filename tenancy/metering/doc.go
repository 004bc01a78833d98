// Package metering measures what each tenant costs: requests, database
// time, rows read and written, bytes sent, WebSocket events and
// socket-seconds, and storage.
//
// A Meter per gateway replica aggregates usage per organization per minute
// in memory, in bounded memory: at most Config.MaxOrganizations
// organizations per minute, the usage of any more counted under the
// OverflowOrganization pseudo-organization. Meter.Run flushes to the
// catalog in one batched statement per flush. Rows are keyed (replica,
// organization, minute) and hold that replica's cumulative totals for the
// minute, so flushing a minute again overwrites its row instead of adding
// to it: a replica that dies loses at most what it had not flushed, and
// nothing is counted twice. Readers sum over replicas.
//
// A Store reads the figures back (Totals, Top, Shares), rolls minute rows
// older than a day into hourly rows (Rollup), deletes what is older than
// the retention (Prune), and keeps each organization's latest storage
// figure (RecordStorage).
//
// A Tracer, installed on the tenant databases' pools, turns each
// statement of a tenant-scope call into database time and rows read or
// written, from its command tag.
package metering
