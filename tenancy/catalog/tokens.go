package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevokeToken records a logged-out session so every replica refuses it,
// durably: Redis may lose it, the catalog does not.
func (s *Store) RevokeToken(ctx context.Context, jti, userID, orgID string, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO revoked_tokens (jti, user_id, organization_id, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (jti) DO NOTHING`, jti, userID, orgID, expires)
	return interpret(err, "revoked token")
}

// RevokedToken is a revoked session and when it would have expired.
type RevokedToken struct {
	JTI     string
	Expires time.Time
}

// RevokedTokens returns the revocations that still matter: those of tokens
// not yet expired. A starting replica loads them all.
func (s *Store) RevokedTokens(ctx context.Context) ([]RevokedToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > now()`)
	if err != nil {
		return nil, interpret(err, "revoked tokens")
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RevokedToken])
	return out, interpret(err, "revoked tokens")
}

// PruneRevokedTokens forgets revocations of tokens that expired long ago.
func (s *Store) PruneRevokedTokens(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 hour'`)
	return interpret(err, "revoked tokens")
}
