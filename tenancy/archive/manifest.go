package archive

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/tenantgate/tenantgate/tenancy"
)

// FormatVersion is the version of the archive layout this package writes,
// and the newest it reads.
const FormatVersion = 1

// formatName is the manifest's "format": what tells an archive from any
// other tar.
const formatName = "tenantgate-tenant-archive"

// The archive's file names.
const (
	manifestFile = "manifest.json"
	usersFile    = "users.json"
	tablesDir    = "tables/"
	tableExt     = ".copy"
)

// Bounds on the files read into memory whole, so that a hostile archive
// cannot make a reader allocate without limit. Data files are streamed.
const (
	maxManifestBytes = 1 << 20
	maxUsersBytes    = 16 << 20
)

// Manifest is an archive's manifest.json (see the package documentation).
type Manifest struct {
	Format        string       `json:"format"`
	FormatVersion int          `json:"formatVersion"`
	Organization  Organization `json:"organization"`
	SchemaVersion uint         `json:"schemaVersion"`
	ExportedAt    time.Time    `json:"exportedAt"`
	Tables        []Table      `json:"tables"`
	// Users describes users.json; nil when the archive holds no users.
	Users *UsersFile `json:"users,omitempty"`
}

// Organization is the exported organization, as the catalog knew it.
type Organization struct {
	ID   string       `json:"id"`
	Slug string       `json:"slug"`
	Name string       `json:"name"`
	Plan tenancy.Plan `json:"plan"`
}

// Table describes one table's data file.
type Table struct {
	Name string `json:"name"`
	// File is the data file's name in the tar: tables/<name>.copy.
	File string `json:"file"`
	// Columns are the data file's columns, in order.
	Columns []string `json:"columns"`
	// Key is the columns the rows are sorted by.
	Key    []string `json:"key"`
	Rows   int64    `json:"rows"`
	Bytes  int64    `json:"bytes"`
	SHA256 string   `json:"sha256"`
}

// UsersFile describes users.json.
type UsersFile struct {
	File   string `json:"file"`
	Count  int    `json:"count"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// User is a member of the organization as an export with users carries it:
// no password hash, no key, no token.
type User struct {
	Email string       `json:"email"`
	Name  string       `json:"name,omitempty"`
	Role  tenancy.Role `json:"role"`
}

// Rows is the number of rows over every table.
func (m Manifest) Rows() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// Errors an archive is refused with. Each is returned inside a
// *tenancy.Error whose message says what exactly failed; test with
// errors.Is.
var (
	// ErrCorrupt: the archive is damaged, truncated, or was altered.
	ErrCorrupt = errors.New("archive is damaged, truncated or altered")
	// ErrNewerFormat: the archive's format version is newer than this
	// binary reads.
	ErrNewerFormat = errors.New("archive format is newer than this tenantgate reads")
	// ErrNewerSchema: the archive's tenant schema is newer than the
	// database's or than this binary's migrations.
	ErrNewerSchema = errors.New("archive schema is newer than the database's")
	// ErrIncompatible: the archive's tables cannot be loaded into the
	// database's schema.
	ErrIncompatible = errors.New("archive does not fit the database's schema")
	// ErrNotEmpty: Import was asked to load into an organization that
	// already has rows in the database.
	ErrNotEmpty = errors.New("organization already has data in this database")
	// ErrOtherOrganization: Restore was given another organization's
	// archive.
	ErrOtherOrganization = errors.New("archive is of another organization")
	// ErrRejected: the database refused an archive's rows (a value of the
	// wrong type, a broken constraint or reference). The archive passed
	// its checksums, so something other than Export made or edited it.
	ErrRejected = errors.New("the database refused the archive's rows")
	// ErrMismatch: a table read back after loading differs from the
	// archive. The transaction was rolled back.
	ErrMismatch = errors.New("rows read back differ from the archive")
)

// refuse returns an invalid_request error with a client-safe message that
// wraps kind.
func refuse(kind error, format string, args ...any) error {
	return &tenancy.Error{Code: tenancy.CodeInvalid, Message: "archive: " + fmt.Sprintf(format, args...), Err: kind}
}

// corrupt reports an archive that fails its own checks.
func corrupt(format string, args ...any) error {
	return refuse(ErrCorrupt, format, args...)
}

// identPattern is what a table or column name in a manifest may look like:
// what the tenant schema uses, so a name never needs more than quoting.
var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// check validates a manifest read from an archive, before any of its data
// is: an untrusted document.
func (m *Manifest) check() error {
	if err := checkFormat(m.Format, m.FormatVersion); err != nil {
		return err
	}
	if _, err := uuid.Parse(m.Organization.ID); err != nil {
		return corrupt("%s: organization id %q", manifestFile, m.Organization.ID)
	}
	if m.SchemaVersion == 0 {
		return corrupt("%s: no schema version", manifestFile)
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		if !identPattern.MatchString(t.Name) || seen[t.Name] {
			return corrupt("%s: table %q named twice or not a table name", manifestFile, t.Name)
		}
		seen[t.Name] = true
		if err := t.check(); err != nil {
			return err
		}
	}
	if u := m.Users; u != nil {
		if u.File != usersFile || u.Count < 0 || u.Bytes < 0 || u.Bytes > maxUsersBytes || !isSHA256(u.SHA256) {
			return corrupt("%s: users entry", manifestFile)
		}
	}
	return nil
}

// checkFormat refuses what is not an archive, or one of a newer format.
func checkFormat(format string, version int) error {
	if format != formatName {
		return corrupt("%s: not a tenantgate tenant archive (format %q)", manifestFile, format)
	}
	if version > FormatVersion {
		return refuse(ErrNewerFormat, "format version %d is newer than this tenantgate reads (up to %d): read it with a newer tenantgate",
			version, FormatVersion)
	}
	if version < 1 {
		return corrupt("%s: format version %d", manifestFile, version)
	}
	return nil
}

func (t Table) check() error {
	bad := func(what string) error { return corrupt("%s: table %s: %s", manifestFile, t.Name, what) }
	if t.File != tablesDir+t.Name+tableExt {
		return bad("file must be " + tablesDir + t.Name + tableExt)
	}
	if len(t.Columns) == 0 {
		return bad("no columns")
	}
	cols := map[string]bool{}
	for _, c := range t.Columns {
		if !identPattern.MatchString(c) || cols[c] || c == "organization_id" {
			return bad(fmt.Sprintf("column %q", c))
		}
		cols[c] = true
	}
	if len(t.Key) == 0 {
		return bad("no key")
	}
	for _, k := range t.Key {
		if !cols[k] {
			return bad(fmt.Sprintf("key column %q is not a column", k))
		}
	}
	if t.Rows < 0 || t.Bytes < 0 || (t.Rows == 0) != (t.Bytes == 0) {
		return bad("rows and bytes")
	}
	if !isSHA256(t.SHA256) {
		return bad("sha256")
	}
	return nil
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && hex.EncodeToString(b) == s
}
