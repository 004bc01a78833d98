package tenancy

import (
	"encoding/base64"
	"regexp"
	"strings"
	"time"
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

// Cursor is the position after which a page starts: the (created_at, id)
// of the previous page's last row.
type Cursor struct {
	At time.Time
	ID string
}

// EncodeCursor names the last row of a page; clients see it as opaque.
func EncodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

// canonicalUUID is the only id form a cursor may carry: what Postgres
// prints, and what it accepts without surprises.
var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func decodeCursor(s string) (Cursor, error) {
	bad := Errorf(CodeInvalid, "cursor: not a cursor this API returned")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok || !canonicalUUID.MatchString(id) {
		return Cursor{}, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return Cursor{}, bad
	}
	return Cursor{At: t, ID: id}, nil
}

// Bounds returns the page's size and keyset lower bound; without a cursor
// the bound sorts before every row.
func (p Page) Bounds() (Cursor, int, error) {
	limit := p.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Cursor{}, 0, Errorf(CodeInvalid, "limit: must be between 1 and %d", MaxLimit)
	}
	if p.Cursor == "" {
		return Cursor{At: time.Unix(0, 0), ID: "00000000-0000-0000-0000-000000000000"}, limit, nil
	}
	c, err := decodeCursor(p.Cursor)
	return c, limit, err
}

// PageOf trims a list read with limit+1 rows to the page and returns the
// cursor of the next page, "" on the last.
func PageOf[T any](items []T, limit int, key func(T) (time.Time, string)) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	at, id := key(items[limit-1])
	return items, EncodeCursor(at, id)
}
