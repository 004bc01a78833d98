package catalog

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Server is a PostgreSQL server that may hold dedicated databases.
type Server struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	DSN       string `json:"-"`
	Capacity  int    `json:"capacity"`
	Databases int    `json:"databases"`
}

// AddServer registers a server, or updates the DSN and capacity of the one
// with the same name.
func (s *Store) AddServer(ctx context.Context, name, dsn string, capacity int) (Server, error) {
	var srv Server
	err := s.pool.QueryRow(ctx, `INSERT INTO servers (name, dsn, capacity) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET dsn = EXCLUDED.dsn, capacity = EXCLUDED.capacity
		RETURNING id::text, name, dsn, capacity`, name, dsn, capacity).Scan(&srv.ID, &srv.Name, &srv.DSN, &srv.Capacity)
	return srv, interpret(err, "server")
}

// Servers lists the registered servers with how many databases each holds.
func (s *Store) Servers(ctx context.Context) ([]Server, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.id::text, v.name, v.dsn, v.capacity,
		(SELECT count(*) FROM databases d WHERE d.server_id = v.id AND d.state <> 'dropping')
		FROM servers v ORDER BY v.name`)
	if err != nil {
		return nil, interpret(err, "servers")
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Server])
	return out, interpret(err, "servers")
}

// PickServer returns the registered server with the most room, or
// not_found when none is registered or all are full.
func (s *Store) PickServer(ctx context.Context) (Server, error) {
	servers, err := s.Servers(ctx)
	if err != nil {
		return Server{}, err
	}
	best := -1
	for i, srv := range servers {
		if srv.Databases < srv.Capacity && (best < 0 || srv.Capacity-srv.Databases > servers[best].Capacity-servers[best].Databases) {
			best = i
		}
	}
	if best < 0 {
		return Server{}, tenancy.Errorf(tenancy.CodeNotFound, "no registered server has room")
	}
	return servers[best], nil
}

// HasServers reports whether any server is registered.
func (s *Store) HasServers(ctx context.Context) (bool, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM servers`).Scan(&n)
	return n > 0, interpret(err, "servers")
}
