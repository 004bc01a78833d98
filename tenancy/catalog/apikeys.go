package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// APIKey is a key as its organization sees it: never the secret.
type APIKey struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	KeyPrefix  string       `json:"keyPrefix"`
	Role       tenancy.Role `json:"role"`
	ExpiresAt  *time.Time   `json:"expiresAt"`
	LastUsedAt *time.Time   `json:"lastUsedAt"`
	CreatedAt  time.Time    `json:"createdAt"`
}

const keyColumns = `id::text, name, prefix, role, expires_at, last_used_at, created_at`

func scanKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Name, &k.KeyPrefix, &k.Role, &k.ExpiresAt, &k.LastUsedAt, &k.CreatedAt)
	return k, err
}

// NewAPIKey is what CreateAPIKey stores.
type NewAPIKey struct {
	OrganizationID, CreatedBy, Name, Prefix string
	Role                                    tenancy.Role
	SecretHash                              []byte
	ExpiresAt                               *time.Time
}

// CreateAPIKey stores a key's prefix and secret hash.
func (s *Store) CreateAPIKey(ctx context.Context, n NewAPIKey) (APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `
		INSERT INTO api_keys (organization_id, created_by, name, prefix, secret_hash, role, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+keyColumns,
		n.OrganizationID, nullIfEmpty(n.CreatedBy), n.Name, n.Prefix, n.SecretHash, n.Role, n.ExpiresAt))
	return k, interpret(err, "API key")
}

// APIKeys lists one page of an organization's live keys.
func (s *Store) APIKeys(ctx context.Context, orgID string, p tenancy.Page) ([]APIKey, string, error) {
	after, limit, err := p.Bounds()
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE organization_id = $1 AND revoked_at IS NULL AND (created_at, id) > ($2, $3)
		ORDER BY created_at, id LIMIT $4`, orgID, after.At, after.ID, limit+1)
	if err != nil {
		return nil, "", interpret(err, "API keys")
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, "", interpret(err, "API keys")
	}
	keys, next := tenancy.PageOf(keys, limit, func(k APIKey) (time.Time, string) { return k.CreatedAt, k.ID })
	return keys, next, nil
}

// RevokeAPIKey revokes a live key of the organization and returns its
// prefix; another organization's key is not found.
func (s *Store) RevokeAPIKey(ctx context.Context, orgID, id string) (string, error) {
	var prefix string
	err := s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now()
		WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING prefix`, orgID, id).Scan(&prefix)
	return prefix, interpret(err, "API key")
}

// KeyRecord is what verifying a key needs.
type KeyRecord struct {
	ID, OrganizationID, CreatedBy, Prefix string
	Role                                  tenancy.Role
	Hash                                  []byte
	ExpiresAt                             *time.Time
	Revoked                               bool
}

// APIKeyByPrefix returns the key with prefix, revoked or not.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (KeyRecord, error) {
	var k KeyRecord
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, organization_id::text, coalesce(created_by::text, ''), prefix, role, secret_hash, expires_at, revoked_at IS NOT NULL
		FROM api_keys WHERE prefix = $1`, prefix).
		Scan(&k.ID, &k.OrganizationID, &k.CreatedBy, &k.Prefix, &k.Role, &k.Hash, &k.ExpiresAt, &k.Revoked)
	return k, interpret(err, "API key")
}

// TouchAPIKeys records when keys were last used, in one statement for a
// whole batch.
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	times := make([]time.Time, 0, len(used))
	for id, at := range used {
		ids = append(ids, id)
		times = append(times, at)
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
		FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id`, ids, times)
	return interpret(err, "API keys")
}

// nullIfEmpty passes "" as SQL NULL.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
