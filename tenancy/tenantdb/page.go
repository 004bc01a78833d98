package tenantdb

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Page asks for one page of a list ordered by (created_at, id).
type Page struct {
	Limit  int
	Cursor string // opaque, from a previous page's next cursor; "" for the first
}

// Page limits of CONTRACT §3.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

type cursor struct {
	at time.Time
	id string
}

// Cursors name the last row of a page; they are opaque to clients.
func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(s string) (cursor, error) {
	bad := tenancy.Errorf(tenancy.CodeInvalid, "cursor: not a cursor this API returned")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return cursor{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	u, uerr := uuid.Parse(id)
	if err != nil || uerr != nil {
		return cursor{}, bad
	}
	return cursor{at: t, id: u.String()}, nil
}

// bounds returns the page's keyset lower bound; the zero cursor sorts first.
func (p Page) bounds() (cursor, int, error) {
	limit := p.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return cursor{}, 0, tenancy.Errorf(tenancy.CodeInvalid, "limit: must be between 1 and %d", MaxLimit)
	}
	if p.Cursor == "" {
		return cursor{at: time.Unix(0, 0), id: uuid.Nil.String()}, limit, nil
	}
	c, err := decodeCursor(p.Cursor)
	return c, limit, err
}
