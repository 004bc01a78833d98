package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Audit verdicts (see tenancy/audit).
const (
	VerdictOK     = "ok"
	VerdictDrift  = "drift"
	VerdictUnsafe = "unsafe"
)

// AuditRecord is a database's last isolation audit.
type AuditRecord struct {
	DatabaseID     string     `json:"databaseId"`
	Database       string     `json:"database"`
	Verdict        string     `json:"verdict"`
	Findings       []string   `json:"findings"`
	SchemaVersion  int64      `json:"schemaVersion"`
	AuditedAt      time.Time  `json:"auditedAt"`
	Quarantined    bool       `json:"quarantined"`
	AcceptedReason string     `json:"acceptedReason,omitempty"`
	AcceptedAt     *time.Time `json:"acceptedAt,omitempty"`
}

// findingsHash names one set of findings, whatever their order.
func findingsHash(findings []string) string {
	sorted := append([]string(nil), findings...)
	sort.Strings(sorted)
	raw, _ := json.Marshal(sorted)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// RecordAudit stores a database's verdict and quarantines it when unsafe,
// unless an operator accepted these exact findings; a verdict that is not
// unsafe releases it. It reports whether the database is now quarantined
// and whether that changed, so the caller tells the gateways.
func (s *Store) RecordAudit(ctx context.Context, databaseID, verdict string, findings []string, version int64) (quarantined, changed bool, err error) {
	if findings == nil {
		findings = []string{}
	}
	hash := findingsHash(findings)
	raw, _ := json.Marshal(findings)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var accepted *string
		var was bool
		err := tx.QueryRow(ctx, `SELECT d.quarantined, a.accepted_hash FROM databases d
			LEFT JOIN database_audits a ON a.database_id = d.id WHERE d.id = $1 FOR UPDATE OF d`, databaseID).Scan(&was, &accepted)
		if err != nil {
			return interpret(err, "database")
		}
		quarantined = verdict == VerdictUnsafe && (accepted == nil || *accepted != hash)
		changed = quarantined != was
		if _, err := tx.Exec(ctx, `INSERT INTO database_audits (database_id, verdict, findings, findings_hash, schema_version, audited_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (database_id) DO UPDATE SET verdict = EXCLUDED.verdict, findings = EXCLUDED.findings,
				findings_hash = EXCLUDED.findings_hash, schema_version = EXCLUDED.schema_version, audited_at = now()`,
			databaseID, verdict, raw, hash, version); err != nil {
			return interpret(err, "audit")
		}
		_, err = tx.Exec(ctx, `UPDATE databases SET quarantined = $2 WHERE id = $1`, databaseID, quarantined)
		return interpret(err, "database")
	})
	return quarantined, changed, err
}

// AcceptAudit releases a quarantined database on an operator's word,
// recording the reason: the findings of its last audit are accepted, and
// only a later audit with other findings quarantines it again.
func (s *Store) AcceptAudit(ctx context.Context, databaseID, reason string) error {
	tag, err := s.pool.Exec(ctx, `WITH a AS (
			UPDATE database_audits SET accepted_hash = findings_hash, accepted_reason = $2, accepted_at = now()
			WHERE database_id = $1 RETURNING database_id
		)
		UPDATE databases SET quarantined = false WHERE id = (SELECT database_id FROM a)`, databaseID, reason)
	if err != nil {
		return interpret(err, "audit")
	}
	if tag.RowsAffected() == 0 {
		return tenancy.Errorf(tenancy.CodeNotFound, "database %s has not been audited yet: run tenantgate audit first", databaseID)
	}
	return nil
}

// Audits lists every database's last audit, databases never audited
// included (with an empty verdict).
func (s *Store) Audits(ctx context.Context) ([]AuditRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.id::text, d.name, coalesce(a.verdict, ''), coalesce(a.findings, '[]'),
			coalesce(a.schema_version, 0), coalesce(a.audited_at, 'epoch'), d.quarantined, coalesce(a.accepted_reason, ''), a.accepted_at
		FROM databases d LEFT JOIN database_audits a ON a.database_id = d.id ORDER BY d.kind DESC, d.name`)
	if err != nil {
		return nil, interpret(err, "audits")
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditRecord, error) {
		var r AuditRecord
		var raw []byte
		err := row.Scan(&r.DatabaseID, &r.Database, &r.Verdict, &raw, &r.SchemaVersion, &r.AuditedAt, &r.Quarantined,
			&r.AcceptedReason, &r.AcceptedAt)
		if err == nil {
			err = json.Unmarshal(raw, &r.Findings)
		}
		return r, err
	})
}

// AuditPosture counts databases by their last verdict ("unaudited" for
// none yet) and returns when the newest audit ran (zero if never).
func (s *Store) AuditPosture(ctx context.Context) (map[string]int, time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(a.verdict, 'unaudited'), count(*), max(a.audited_at)
		FROM databases d LEFT JOIN database_audits a ON a.database_id = d.id GROUP BY 1`)
	if err != nil {
		return nil, time.Time{}, interpret(err, "audits")
	}
	defer rows.Close()
	counts := map[string]int{VerdictOK: 0, VerdictDrift: 0, VerdictUnsafe: 0, "unaudited": 0}
	var last time.Time
	for rows.Next() {
		var verdict string
		var n int
		var at *time.Time
		if err := rows.Scan(&verdict, &n, &at); err != nil {
			return nil, time.Time{}, interpret(err, "audits")
		}
		counts[verdict] = n
		if at != nil && at.After(last) {
			last = *at
		}
	}
	return counts, last, interpret(rows.Err(), "audits")
}
