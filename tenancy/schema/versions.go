package schema

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// Versions lists the migration versions in dir of fsys, oldest first.
func Versions(fsys fs.FS, dir string) ([]uint, error) {
	src, err := iofs.New(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("schema: migrations %s: %w", dir, err)
	}
	defer src.Close()
	var versions []uint
	v, err := src.First()
	for err == nil {
		versions = append(versions, v)
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("schema: migrations %s: %w", dir, err)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("schema: no migrations in %s", dir)
	}
	return versions, nil
}
