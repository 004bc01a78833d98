package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Credentials are a user and the hash its password is checked against.
type Credentials struct {
	User         tenancy.User
	PasswordHash string
}

// UserByEmail returns the user with email (compared without case).
func (s *Store) UserByEmail(ctx context.Context, email string) (Credentials, error) {
	var c Credentials
	u := &c.User
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, organization_id::text, email, role, created_at, password_hash
		FROM users WHERE lower(email) = $1`, NormalizeEmail(email)).
		Scan(&u.ID, &u.OrganizationID, &u.Email, &u.Role, &u.CreatedAt, &c.PasswordHash)
	return c, interpret(err, "user")
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (tenancy.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, interpret(err, "user")
}

const userColumns = `id::text, organization_id::text, email, role, created_at`

func scanUser(row pgx.Row) (tenancy.User, error) {
	var u tenancy.User
	err := row.Scan(&u.ID, &u.OrganizationID, &u.Email, &u.Role, &u.CreatedAt)
	return u, err
}

// Users lists one page of an organization's users.
func (s *Store) Users(ctx context.Context, orgID string, p tenancy.Page) ([]tenancy.User, string, error) {
	after, limit, err := p.Bounds()
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE organization_id = $1 AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4`,
		orgID, after.At, after.ID, limit+1)
	if err != nil {
		return nil, "", interpret(err, "users")
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenancy.User, error) { return scanUser(r) })
	if err != nil {
		return nil, "", interpret(err, "users")
	}
	users, next := tenancy.PageOf(users, limit, func(u tenancy.User) (time.Time, string) { return u.CreatedAt, u.ID })
	return users, next, nil
}

// CreateUser adds a user to an organization; a taken email is a conflict,
// whichever organization holds it.
func (s *Store) CreateUser(ctx context.Context, orgID, email, passwordHash string, role tenancy.Role) (tenancy.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `INSERT INTO users (organization_id, email, password_hash, role)
		VALUES ($1, $2, $3, $4) RETURNING `+userColumns, orgID, NormalizeEmail(email), passwordHash, role))
	return u, interpret(err, "user with this email")
}

// ErrLastOwner refuses to leave an organization without an owner.
var ErrLastOwner = tenancy.Errorf(tenancy.CodeConflict, "the organization's last owner cannot be removed or demoted")

// SetUserRole changes the role of a user of the organization. Owners are
// locked while checking so two concurrent demotions cannot both pass the
// last-owner check.
func (s *Store) SetUserRole(ctx context.Context, orgID, userID string, role tenancy.Role) (tenancy.User, error) {
	var u tenancy.User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := guardLastOwner(ctx, tx, orgID, userID, role != tenancy.RoleOwner); err != nil {
			return err
		}
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET role = $3, updated_at = now()
			WHERE organization_id = $1 AND id = $2 RETURNING `+userColumns, orgID, userID, role))
		if err != nil {
			return interpret(err, "user")
		}
		// The user's keys come down with it, for good: a key never acts
		// above its creator, and must not regain a role when the creator
		// is promoted again or deleted.
		_, err = tx.Exec(ctx, `UPDATE api_keys SET role = $3
			WHERE organization_id = $1 AND created_by = $2 AND `+roleRank("role")+` > `+roleRank("$3::text"),
			orgID, userID, role)
		return interpret(err, "API keys")
	})
	return u, err
}

// roleRank is the SQL rank of a role expression: owner 3, admin 2, member 1.
func roleRank(expr string) string {
	return `(CASE ` + expr + ` WHEN 'owner' THEN 3 WHEN 'admin' THEN 2 ELSE 1 END)`
}

// DeleteUser removes a user of the organization, unless it is the last owner.
func (s *Store) DeleteUser(ctx context.Context, orgID, userID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := guardLastOwner(ctx, tx, orgID, userID, true); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE organization_id = $1 AND id = $2`, orgID, userID)
		if err != nil {
			return interpret(err, "user")
		}
		if tag.RowsAffected() == 0 {
			return tenancy.Errorf(tenancy.CodeNotFound, "user not found")
		}
		return nil
	})
}

// guardLastOwner fails when userID is the organization's only owner and is
// about to stop being one.
func guardLastOwner(ctx context.Context, tx pgx.Tx, orgID, userID string, losing bool) error {
	rows, err := tx.Query(ctx, `SELECT id::text FROM users WHERE organization_id = $1 AND role = 'owner' FOR UPDATE`, orgID)
	if err != nil {
		return interpret(err, "users")
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return interpret(err, "users")
	}
	if losing && len(owners) == 1 && owners[0] == userID {
		return ErrLastOwner
	}
	return nil
}
